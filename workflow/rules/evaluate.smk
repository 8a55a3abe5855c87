# Stage 5: DSC and HD95 (mm) per case and class, on whole volumes in their original space.


rule evaluate:
    input:
        pred=f"{CELL}/predictions",
        raw=f"{RESULTS}/datasets/{{dataset}}",
        # The training outputs directly: if a rerun of the training fails (Snakemake then deletes
        # them), the next run retrains this cell instead of keeping metrics without a model.
        model=rules.train.output.model,
        cell=rules.train.output.cell,
        code=code("dicebench.evaluation.evaluate"),
    output:
        metrics=f"{CELL}/metrics.csv",
        cases=f"{CELL}/per_case.csv",
    threads: threads_for("evaluate")
    group:
        "cell"
    resources:
        **resources_for("evaluate"),
    conda:
        "../../envs/evaluate.yaml"
    log:
        f"{RESULTS}/logs/evaluate/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench evaluate --pred-dir {input.pred} --gt-dir {input.raw}/labelsTs "
        "--dataset-json {input.raw}/dataset.json --cases-out {output.cases} --out {output.metrics} "
        "--threads {threads} > {log} 2>&1"
