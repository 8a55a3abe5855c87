# Stage 4: sliding-window inference over every whole test volume, in its original geometry.


rule infer:
    input:
        model=lambda w: f"{CELL}/model.pt" if config["inference"]["checkpoint"] == "last" else f"{CELL}/model_best.pt",
        data=preprocessed_of,
        raw=f"{RESULTS}/datasets/{{dataset}}",
    output:
        directory(f"{CELL}/predictions"),
    params:
        # Result-affecting inference settings (the result-neutral ones travel in resources).
        settings=json.dumps(
            {k: v for k, v in config["inference"].items() if k not in ("sw_batch_size", "slices_per_chunk")}
        ),
        threads=config["compute_threads"],
    threads: config["compute_threads"]
    group:
        "cell"
    resources:
        **resources_for("infer"),
        # Result-neutral settings (loader workers, window batch): resources never rerun a job.
        runtime_settings=cell_runtime,
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/infer/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/infer/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench infer --model {input.model} --images {input.data}/imagesTs --reference {input.raw}/imagesTs "
        "--out {output} --settings '{params.settings}' --runtime '{resources.runtime_settings}' "
        "--threads {params.threads} > {log} 2>&1"
