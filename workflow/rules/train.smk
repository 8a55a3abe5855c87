# Stage 3: train one cell per job. A killed job resumes from its checkpoint when rerun.


rule train:
    input:
        data=preprocessed_of,
        stats=class_stats_of,
    output:
        model=f"{CELL}/model.pt",
        best=f"{CELL}/model_best.pt",
        log_csv=f"{CELL}/log.csv",
        cell=f"{CELL}/cell.json",
    params:
        settings=lambda w: json.dumps(grid.cell_settings(config, cell_of(w))),
        out=lambda w: f"{RESULTS}/{cell_of(w).path}",
    threads: config["threads_per_job"]
    group:
        "cell"
    resources:
        **resources_for("train"),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/train/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench train --dataset {input.data} --class-stats {input.stats} "
        "--settings '{params.settings}' --out {params.out} > {log} 2>&1"
