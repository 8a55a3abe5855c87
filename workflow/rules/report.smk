# Stage 6: one table per experiment (CSV and Markdown) and its learning curves.


rule aggregate:
    input:
        metrics=lambda w: [f"{RESULTS}/{c.path}/metrics.csv" for c in cells_of(w.experiment)],
        cells=lambda w: [f"{RESULTS}/{c.path}/cell.json" for c in cells_of(w.experiment)],
    output:
        csv=report(f"{RESULTS}/{{experiment}}/table.csv", caption="../report/table.rst", category="Tables"),
        md=f"{RESULTS}/{{experiment}}/table.md",
    params:
        root=RESULTS,
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{experiment}}.tsv"
    shell:
        "{DICEBENCH} aggregate --experiment {wildcards.experiment} --metrics {input.metrics} "
        "--root {params.root} --csv {output.csv} --md {output.md} > {log} 2>&1"


rule learning_curves:
    input:
        logs=lambda w: [f"{RESULTS}/{c.path}/log.csv" for c in cells_of(w.experiment)],
    output:
        report(f"{FIGURES}/{{experiment}}_learning_curves.png", caption="../report/learning_curves.rst",
               category="Figures"),
    params:
        root=RESULTS,
    log:
        f"{RESULTS}/logs/learning_curves/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/learning_curves/{{experiment}}.tsv"
    shell:
        "{DICEBENCH} figures learning-curves --experiment {wildcards.experiment} --logs {input.logs} "
        "--root {params.root} --out {output} > {log} 2>&1"
