# Stage 1: datasets in the nnU-Net v2 raw layout. Synthetic phantoms are generated here;
# real datasets are downloaded and converted (see config/datasets.yaml).


rule synthesize:
    output:
        directory(f"{RESULTS}/datasets/{{dataset}}"),
    params:
        ds=lambda w: config["datasets"][w.dataset],
        knobs=lambda w: json.dumps(config["datasets"][w.dataset].get("knobs", {})),
        extra=lambda w: " ".join(
            [f"--shape {' '.join(map(str, config['datasets'][w.dataset]['shape']))}"]
            if "shape" in config["datasets"][w.dataset] else []
        ) + " ".join(
            [f" --spacing {' '.join(map(str, config['datasets'][w.dataset]['spacing']))}"]
            if "spacing" in config["datasets"][w.dataset] else []
        ),
    log:
        f"{RESULTS}/logs/synthesize/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize/{{dataset}}.tsv"
    shell:
        "{DICEBENCH} synthesize --kind {params.ds[phantom]} --name {wildcards.dataset} --out {output} "
        "--n-train {params.ds[n_train]} --n-test {params.ds[n_test]} --seed {params.ds[seed]} "
        "--knobs '{params.knobs}' {params.extra} > {log} 2>&1"
