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
        # The cell's result-affecting settings: a change reruns it (grid.cell_settings).
        settings=lambda w: json.dumps(grid.cell_settings(config, cell_of(w))),
        out=lambda w: f"{RESULTS}/{cell_of(w).path}",
    threads: config["compute_threads"]
    group:
        "cell"
    resources:
        **resources_for("train"),
        # Result-neutral settings (loader workers, window batch): resources never rerun a job.
        runtime_settings=cell_runtime,
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/train/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench train --dataset {input.data} --class-stats {input.stats} "
        "--settings '{params.settings}' --runtime '{resources.runtime_settings}' --out {params.out} > {log} 2>&1"
