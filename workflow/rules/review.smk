# Review: what a reviewer needs to check a run (dicebench.review; README "Checking a run").
#   figures/viewer/{experiment}/{dataset}.html   every test case slice by slice: image, reference
#                                                and each variant's prediction (first seed)
#   results/bundle.tar.gz                        one checksummed archive of the run (`make bundle`)
#   results/bundle_with_weights.tar.gz           the same with every cell's model.pt, model_best.pt
#   results/verify/{cell}/verdict.csv            rerun one cell in a scratch folder and compare it
#                                                with results/bundle.tar.gz
#   results/verify/claim_{claim}/verdict.csv     the same for every cell of one claim
# The verify targets do not list the bundle as an input, so a bundle received from elsewhere and
# copied to results/bundle.tar.gz is checked as it is, never rebuilt from this checkout.

# Viewer pages of the configured experiments (the `all` target lists them too).
VIEWER_PAGES = wf.viewer_pages(config)
BUNDLE = f"{RESULTS}/bundle.tar.gz"
# The cell files the bundle takes that rules declare (train writes split.json too, undeclared).
BUNDLE_CELL_FILES = ["cell.json", "log.csv", "per_case.csv", "metrics.csv"]


wildcard_constraints:
    claim=r"[A-Za-z0-9]+",


rule viewer:
    input:
        raw=f"{RESULTS}/datasets/{{dataset}}",
        predictions=lambda w: [f"{RESULTS}/{c.path}/predictions" for c in qualitative_cells(w)],
        cases=lambda w: [f"{RESULTS}/{c.path}/per_case.csv" for c in qualitative_cells(w)],
        code=code("dicebench.review.viewer"),
    output:
        report(f"{FIGURES}/viewer/{{experiment}}/{{dataset}}.html", caption="../report/viewer.rst", category="Viewer"),
    threads: threads_for("viewer")
    resources:
        **resources_for("viewer"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/viewer/{{experiment}}_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/viewer/{{experiment}}_{{dataset}}.tsv"
    shell:
        "dicebench viewer --experiment {wildcards.experiment} --dataset-dir {input.raw} "
        "--predictions {input.predictions} --out {output} > {log} 2>&1"


rule bundle:
    # The config as this Snakemake run resolved it (--config overrides included) goes in as
    # config/resolved.yaml, what `verify` reruns; the config files beside it for reading.
    input:
        targets=wf.targets(config),
        paper=config["paper_pdf"],
        cells=[f"{RESULTS}/{c.path}/{n}" for c in CELLS for n in BUNDLE_CELL_FILES],
    output:
        BUNDLE,
    params:
        configfiles=lambda w: " ".join(shlex.quote(str(p)) for p in workflow.configfiles),
        config=lambda w: shlex.quote(json.dumps(config, default=str)),
    threads: threads_for("bundle")
    resources:
        **resources_for("bundle"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/bundle.log",
    benchmark:
        f"{RESULTS}/benchmarks/bundle.tsv"
    shell:
        "dicebench bundle --configfile {params.configfiles} --config-json {params.config} "
        "--paper {input.paper} --out {output} > {log} 2>&1"


rule bundle_with_weights:
    input:
        targets=wf.targets(config),
        paper=config["paper_pdf"],
        cells=[f"{RESULTS}/{c.path}/{n}" for c in CELLS for n in BUNDLE_CELL_FILES + ["model.pt", "model_best.pt"]],
    output:
        f"{RESULTS}/bundle_with_weights.tar.gz",
    params:
        configfiles=lambda w: " ".join(shlex.quote(str(p)) for p in workflow.configfiles),
        config=lambda w: shlex.quote(json.dumps(config, default=str)),
    threads: threads_for("bundle")
    resources:
        **resources_for("bundle"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/bundle_with_weights.log",
    benchmark:
        f"{RESULTS}/benchmarks/bundle_with_weights.tsv"
    shell:
        "dicebench bundle --configfile {params.configfiles} --config-json {params.config} --weights "
        "--paper {input.paper} --out {output} > {log} 2>&1"


rule verify_cell:
    # Exit status 3 (the cell differs) is a verdict, not a failure: it is in verdict.csv.
    output:
        f"{RESULTS}/verify/{grid.CELL_PATTERN}/verdict.csv",
    params:
        bundle=BUNDLE,
        cell=f"{RESULTS}/{grid.CELL_PATTERN}",
        workdir=f"{RESULTS}/verify/{grid.CELL_PATTERN}/work",
    threads: threads_for("verify")
    resources:
        **resources_for("verify"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/verify/{grid.CELL_PATTERN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/verify/{grid.CELL_PATTERN}.tsv"
    shell:
        "dicebench verify --bundle {params.bundle} --cell {params.cell} --workdir {params.workdir} "
        "--cores {threads} --out {output} > {log} 2>&1 || test $? -eq 3"


rule verify_claim:
    output:
        f"{RESULTS}/verify/claim_{{claim}}/verdict.csv",
    params:
        bundle=BUNDLE,
        workdir=f"{RESULTS}/verify/claim_{{claim}}/work",
    threads: threads_for("verify")
    resources:
        **resources_for("verify"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/verify/claim_{{claim}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/verify/claim_{{claim}}.tsv"
    shell:
        "dicebench verify --bundle {params.bundle} --claim {wildcards.claim} --workdir {params.workdir} "
        "--cores {threads} --out {output} > {log} 2>&1 || test $? -eq 3"
