# Stage 5: DSC and HD95 (mm) per case and class, on whole volumes in their original space.


rule evaluate:
    input:
        pred=f"{CELL}/predictions",
        raw=f"{RESULTS}/datasets/{{dataset}}",
    output:
        metrics=f"{CELL}/metrics.csv",
        cases=f"{CELL}/per_case.csv",
    threads: threads_for("evaluate")
    resources:
        **resources_for("evaluate"),
    conda:
        "../../envs/dicebench.yaml"
    log:
        f"{RESULTS}/logs/evaluate/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench evaluate --pred-dir {input.pred} --gt-dir {input.raw}/labelsTs "
        "--dataset-json {input.raw}/dataset.json --cases-out {output.cases} --out {output.metrics} "
        "--threads {threads} > {log} 2>&1"
