# Stage 4: sliding-window inference over every whole test volume, in its original geometry.


rule infer:
    input:
        model=lambda w: f"{CELL}/model.pt" if config["inference"]["checkpoint"] == "last" else f"{CELL}/model_best.pt",
        data=preprocessed_of,
        raw=f"{RESULTS}/datasets/{{dataset}}",
    output:
        directory(f"{CELL}/predictions"),
    params:
        # Result-affecting inference settings; sw_batch_size and slices_per_chunk travel in
        # INFERENCE_RUNTIME (common.smk) and never rerun a job.
        settings=json.dumps({k: v for k, v in config["inference"].items() if k not in ("sw_batch_size", "slices_per_chunk")}),
        threads=config["compute_threads"],
    threads: config["compute_threads"]
    resources:
        **resources_for("infer"),
    conda:
        "../../envs/dicebench.yaml"
    log:
        f"{RESULTS}/logs/infer/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/infer/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench infer --model {input.model} --images {input.data}/imagesTs --reference {input.raw}/imagesTs "
        "--out {output} --settings '{params.settings}' --runtime '{INFERENCE_RUNTIME}' "
        "--threads {params.threads} > {log} 2>&1"
