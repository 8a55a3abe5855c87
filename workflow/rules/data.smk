# Stage 1: datasets in the nnU-Net v2 raw layout. Synthetic phantoms are generated here;
# real datasets are downloaded and converted (see config/datasets.yaml).


rule synthesize:
    wildcard_constraints:
        dataset=_datasets("synthetic"),
    output:
        directory(f"{RESULTS}/datasets/{{dataset}}"),
    params:
        ds=lambda w: config["datasets"][w.dataset],
        knobs=lambda w: json.dumps(config["datasets"][w.dataset].get("knobs", {})),
        extra=lambda w: " ".join(
            [f"--shape {' '.join(map(str, config['datasets'][w.dataset]['shape']))}"]
            if "shape" in config["datasets"][w.dataset]
            else []
        )
        + " ".join(
            [f" --spacing {' '.join(map(str, config['datasets'][w.dataset]['spacing']))}"]
            if "spacing" in config["datasets"][w.dataset]
            else []
        ),
    threads: threads_for("synthesize")
    resources:
        **resources_for("synthesize"),
    conda:
        "../../envs/data.yaml"
    log:
        f"{RESULTS}/logs/synthesize/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize/{{dataset}}.tsv"
    shell:
        "dicebench synthesize --kind {params.ds[phantom]} --name {wildcards.dataset} --out {output} "
        "--n-train {params.ds[n_train]} --n-test {params.ds[n_test]} --seed {params.ds[seed]} "
        "--knobs '{params.knobs}' {params.extra} > {log} 2>&1"


rule download:
    """Fetch a real dataset's archive(s), resumable and checksum-verified, and extract them
    safely. A dataset behind a registration stops here with instructions."""
    wildcard_constraints:
        dataset=_datasets("real"),
    output:
        directory(f"{RESULTS}/downloads/{{dataset}}/extracted"),
    params:
        name=lambda w: config["datasets"][w.dataset]["registry_name"],
        dest=lambda w: f"{RESULTS}/downloads/{w.dataset}",
    threads: threads_for("download")
    resources:
        **resources_for("download"),
    conda:
        "../../envs/data.yaml"
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{dataset}}.tsv"
    shell:
        "dicebench download {params.name} --dest {params.dest} --extract {output} --no-progress > {log} 2>&1"


rule convert:
    """Convert the extracted dataset into the nnU-Net v2 raw layout, geometry kept; with a
    `holdout`, the test split is whole training patients (Kervadec's ACDC split)."""
    wildcard_constraints:
        dataset=_datasets("real"),
    input:
        f"{RESULTS}/downloads/{{dataset}}/extracted",
    output:
        directory(f"{RESULTS}/datasets/{{dataset}}"),
    params:
        name=lambda w: config["datasets"][w.dataset]["registry_name"],
        holdout=lambda w: (
            "--holdout-patients {patients} --holdout-seed {seed}".format(**config["datasets"][w.dataset]["holdout"])
            if "holdout" in config["datasets"][w.dataset]
            else ""
        ),
    threads: threads_for("convert")
    resources:
        **resources_for("convert"),
    conda:
        "../../envs/data.yaml"
    log:
        f"{RESULTS}/logs/convert/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert/{{dataset}}.tsv"
    shell:
        "dicebench convert {params.name} --src {input} --out {output} --overwrite {params.holdout} > {log} 2>&1"
