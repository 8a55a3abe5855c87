# Stage 4: sliding-window inference over every whole test volume, in its original geometry.


rule infer:
    input:
        model=lambda w: f"{CELL}/model.pt" if config["inference"]["checkpoint"] == "last" else f"{CELL}/model_best.pt",
        data=preprocessed_of,
        raw=f"{RESULTS}/datasets/{{dataset}}",
    output:
        directory(f"{CELL}/predictions"),
    params:
        settings=json.dumps(config["inference"]),
    threads: config["threads_per_job"]
    group:
        "cell"
    resources:
        **resources_for("infer"),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/infer/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/infer/{grid.CELL_PATTERN}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} dicebench infer --model {input.model} --images {input.data}/imagesTs "
        "--reference {input.raw}/imagesTs --out {output} --settings '{params.settings}' > {log} 2>&1"
