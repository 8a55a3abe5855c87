# Stage 2: N4, resampling and normalisation, once per (dataset, preprocessing preset);
# then the training split's class statistics (weights, Mime coefficients).


rule preprocess:
    input:
        f"{RESULTS}/datasets/{{dataset}}",
    output:
        directory(f"{RESULTS}/preprocessed/{{dataset}}/{{preprocessing}}/data"),
    params:
        settings=lambda w: json.dumps(config["preprocessing"][w.preprocessing]),
    threads: threads_for("preprocess")
    resources:
        **resources_for("preprocess"),
    conda:
        "../../envs/data.yaml"
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}/{{preprocessing}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{dataset}}/{{preprocessing}}.tsv"
    shell:
        "dicebench preprocess --raw {input} --out {output} --settings '{params.settings}' "
        "--workers {threads} > {log} 2>&1"


rule class_stats:
    input:
        f"{RESULTS}/preprocessed/{{dataset}}/{{preprocessing}}/data",
    output:
        f"{RESULTS}/preprocessed/{{dataset}}/{{preprocessing}}/class_stats.json",
    threads: threads_for("class_stats")
    resources:
        **resources_for("class_stats"),
    conda:
        "../../envs/data.yaml"
    log:
        f"{RESULTS}/logs/class_stats/{{dataset}}/{{preprocessing}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/class_stats/{{dataset}}/{{preprocessing}}.tsv"
    shell:
        "dicebench class-stats --dataset {input} --out {output} > {log} 2>&1"
