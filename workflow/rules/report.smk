# Stage 6: tables, figures, claims and the paper.
#   per experiment:  results/{experiment}/table.csv|md, cases.csv; figures/{experiment}_learning_curves.png|pdf
#   per paper:       figures/tables/{paper}.csv|md|tex beside paper/published.yaml
#   across papers:   figures/tables/wilcoxon.*, figures/claims.md|csv (+ .tex for the paper),
#                    figures/tables/conventions.* (every claim under each metric convention)
#   last:            paper/paper.pdf (latexmk)
# Each output depends only on the cells it reads, and on the package code it runs (`code(...)`):
# touching one cell rebuilds that cell's experiment table, its paper's table, the claims and
# the paper; editing the drawing code rebuilds the figures and the paper, nothing upstream.


wildcard_constraints:
    paper="|".join(grid.PAPERS),


rule aggregate:
    input:
        metrics=lambda w: cell_paths(cells_of(w.experiment), "metrics.csv"),
        per_case=lambda w: cell_paths(cells_of(w.experiment), "per_case.csv"),
        cells=lambda w: cell_paths(cells_of(w.experiment), "cell.json"),
        code=code("dicebench.reporting.tables"),
    output:
        csv=report(
            f"{RESULTS}/{{experiment}}/table.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory="Per experiment",
        ),
        md=f"{RESULTS}/{{experiment}}/table.md",
        cases=f"{RESULTS}/{{experiment}}/cases.csv",
    params:
        paper=lambda w: wf.claims_paper(config, w.experiment),
    threads: threads_for("aggregate")
    resources:
        **resources_for("aggregate"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{experiment}}.tsv"
    shell:
        "dicebench aggregate --experiment {wildcards.experiment} --metrics {input.metrics} "
        "--csv {output.csv} --md {output.md} --cases {output.cases} --paper '{params.paper}' > {log} 2>&1"


rule paper_table:
    input:
        cases=cases_for_paper,
        published=f"{PAPER_DIR}/published.yaml",
        datasets=datasets_for_paper,
        code=code("dicebench.reporting.paper_tables"),
    output:
        csv=report(
            f"{FIGURES}/tables/{{paper}}.csv",
            caption="../report/paper_table.rst",
            category="Tables",
            subcategory="Beside the papers",
        ),
        md=f"{FIGURES}/tables/{{paper}}.md",
        tex=f"{FIGURES}/tables/{{paper}}.tex",
    threads: threads_for("paper_table")
    resources:
        **resources_for("paper_table"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/paper_table/{{paper}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/paper_table/{{paper}}.tsv"
    shell:
        "dicebench paper-tables --paper {wildcards.paper} --cases {input.cases} --published {input.published} "
        "--datasets {input.datasets} --csv {output.csv} --md {output.md} --tex {output.tex} > {log} 2>&1"


rule wilcoxon:
    input:
        cases=all_cases(),
        code=code("dicebench.reporting.paper_tables"),
    output:
        csv=report(
            f"{FIGURES}/tables/wilcoxon.csv",
            caption="../report/wilcoxon.rst",
            category="Tables",
            subcategory="Supplementary",
        ),
        md=f"{FIGURES}/tables/wilcoxon.md",
        tex=f"{FIGURES}/tables/wilcoxon.tex",
    threads: threads_for("wilcoxon")
    resources:
        **resources_for("wilcoxon"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/wilcoxon.log",
    benchmark:
        f"{RESULTS}/benchmarks/wilcoxon.tsv"
    shell:
        "dicebench paper-tables --paper wilcoxon --cases {input.cases} "
        "--csv {output.csv} --md {output.md} --tex {output.tex} > {log} 2>&1"


rule claims:
    input:
        cases=all_cases(sweeps=True),
        code=code("dicebench.reporting.claims"),
    output:
        md=report(f"{FIGURES}/claims.md", caption="../report/claims.rst", category="Claims"),
        csv=f"{FIGURES}/claims.csv",
        tex=f"{FIGURES}/tables/claims.tex",
    params:
        rule=json.dumps(config["claims"]),
    threads: threads_for("claims")
    resources:
        **resources_for("claims"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    shell:
        "dicebench claims --cases {input.cases} --rule '{params.rule}' --csv {output.csv} --md {output.md} "
        "--tex {output.tex} > {log} 2>&1"


rule conventions:
    input:
        cases=all_cases(sweeps=True),
        published=f"{PAPER_DIR}/published.yaml",
        code=code("dicebench.reporting.conventions"),
    output:
        md=report(
            f"{FIGURES}/tables/conventions.md",
            caption="../report/conventions.rst",
            category="Claims",
        ),
        csv=f"{FIGURES}/tables/conventions.csv",
        tex=f"{FIGURES}/tables/conventions.tex",
        tables=f"{FIGURES}/tables/conventions_tables.csv",
    params:
        rule=json.dumps(config["claims"]),
    threads: threads_for("conventions")
    resources:
        **resources_for("conventions"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/conventions.log",
    benchmark:
        f"{RESULTS}/benchmarks/conventions.tsv"
    shell:
        "dicebench conventions --cases {input.cases} --rule '{params.rule}' --published {input.published} "
        "--tables-csv {output.tables} --csv {output.csv} "
        "--md {output.md} --tex {output.tex} > {log} 2>&1"


rule learning_curves:
    input:
        logs=lambda w: [f"{RESULTS}/{c.path}/log.csv" for c in cells_of(w.experiment)],
        # each run's identity and convergence record, read beside its log
        cells=lambda w: [f"{RESULTS}/{c.path}/cell.json" for c in cells_of(w.experiment)],
        code=code("dicebench.reporting.figures"),
    output:
        png=report(
            f"{FIGURES}/{{experiment}}_learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/{{experiment}}_learning_curves.pdf",
    threads: threads_for("learning_curves")
    resources:
        **resources_for("learning_curves"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/learning_curves/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/learning_curves/{{experiment}}.tsv"
    shell:
        "dicebench figures learning-curves --experiment {wildcards.experiment} --logs {input.logs} "
        "--out {output.png} {output.pdf} > {log} 2>&1"


rule qualitative:
    input:
        raw=f"{RESULTS}/datasets/{{dataset}}",
        predictions=lambda w: [f"{RESULTS}/{c.path}/predictions" for c in qualitative_cells(w)],
        # each prediction panel is named from the cell.json beside its predictions folder
        cells=lambda w: [f"{RESULTS}/{c.path}/cell.json" for c in qualitative_cells(w)],
        code=code("dicebench.reporting.figures"),
    output:
        png=report(
            f"{FIGURES}/qualitative/{{experiment}}/{{dataset}}.png",
            caption="../report/qualitative.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/qualitative/{{experiment}}/{{dataset}}.pdf",
    params:
        render3d=lambda w: "--render3d" if len(config["experiments"][w.experiment]["recipe"]["patch_size"]) == 3 else "",
    threads: threads_for("qualitative")
    resources:
        **resources_for("qualitative"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/qualitative/{{experiment}}_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/qualitative/{{experiment}}_{{dataset}}.tsv"
    shell:
        "dicebench figures qualitative --experiment {wildcards.experiment} --dataset-dir {input.raw} "
        "--predictions {input.predictions} {params.render3d} --out {output.png} {output.pdf} > {log} 2>&1"


rule gradient_map:
    input:
        model=gradient_cell,
        data=preprocessed_of,
        code=code("dicebench.reporting.figures"),
    output:
        png=report(
            f"{FIGURES}/gradient_map/{{experiment}}/{{dataset}}.png",
            caption="../report/gradient_map.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/gradient_map/{{experiment}}/{{dataset}}.pdf",
    threads: threads_for("gradient_map")
    resources:
        **resources_for("gradient_map"),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/gradient_map/{{experiment}}_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gradient_map/{{experiment}}_{{dataset}}.tsv"
    shell:
        "dicebench figures gradient-map --experiment {wildcards.experiment} --model {input.model} "
        "--data-dir {input.data} --out {output.png} {output.pdf} > {log} 2>&1"


rule subpatch:
    input:
        data=preprocessed_of,
        per_case=subpatch_cells,
        cells=lambda w: subpatch_cells(w, "cell.json"),
        code=code("dicebench.reporting.figures"),
    output:
        png=report(
            f"{FIGURES}/subpatch/{{experiment}}/{{dataset}}.png", caption="../report/subpatch.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/subpatch/{{experiment}}/{{dataset}}.pdf",
        csv=f"{FIGURES}/subpatch/{{experiment}}/{{dataset}}.csv",
    params:
        patches=subpatch_sizes,
        configured=lambda w: grid.patch_label(config["experiments"][w.experiment]["recipe"]["patch_size"]),
    threads: threads_for("subpatch")
    resources:
        **resources_for("subpatch"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/subpatch/{{experiment}}_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/subpatch/{{experiment}}_{{dataset}}.tsv"
    shell:
        "dicebench figures subpatch --experiment {wildcards.experiment} --dataset {wildcards.dataset} "
        "--data-dir {input.data} --per-case {input.per_case} --patches {params.patches} "
        "--configured {params.configured} --table {output.csv} --out {output.png} {output.pdf} > {log} 2>&1"


rule lr_sensitivity:
    input:
        cases=f"{RESULTS}/{{experiment}}/cases.csv",
        code=code("dicebench.reporting.figures"),
    output:
        png=report(
            f"{FIGURES}/lr_sensitivity/{{experiment}}.png", caption="../report/lr_sensitivity.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/lr_sensitivity/{{experiment}}.pdf",
        csv=f"{FIGURES}/lr_sensitivity/{{experiment}}.csv",
    threads: threads_for("lr_sensitivity")
    resources:
        **resources_for("lr_sensitivity"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/lr_sensitivity/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/lr_sensitivity/{{experiment}}.tsv"
    shell:
        "dicebench figures lr-sensitivity --experiment {wildcards.experiment} --cases {input.cases} "
        "--table {output.csv} --out {output.png} {output.pdf} > {log} 2>&1"


rule paper_methods:
    # The methods section is generated from the resolved config: it reruns when the config changes.
    input:
        ledger=f"{PAPER_DIR}/deviations.yaml",
        code=code("dicebench.reporting.methods"),
    output:
        f"{RESULTS}/paper/methods.tex",
    params:
        # Result-neutral keys left out: changing one must not rebuild the paper.
        config=lambda w: shlex.quote(json.dumps(strip_neutral(config), sort_keys=True, default=str)),
    threads: threads_for("paper_methods")
    resources:
        **resources_for("paper_methods"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/paper_methods.log",
    benchmark:
        f"{RESULTS}/benchmarks/paper_methods.tsv"
    shell:
        "dicebench methods --config-json {params.config} --deviations {input.ledger} --out {output} > {log} 2>&1"


rule compute:
    input:
        cells=[f"{RESULTS}/{c.path}/cell.json" for c in CELLS],
        metrics=[f"{RESULTS}/{c.path}/metrics.csv" for c in CELLS],
        code=code("dicebench.reporting.compute"),
    output:
        md=f"{FIGURES}/tables/compute.md",
        csv=f"{FIGURES}/tables/compute.csv",
        tex=f"{FIGURES}/tables/compute.tex",
    threads: threads_for("compute")
    resources:
        **resources_for("compute"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/compute.log",
    benchmark:
        f"{RESULTS}/benchmarks/compute.tsv"
    shell:
        "dicebench compute --cells {input.cells} --csv {output.csv} --md {output.md} " "--tex {output.tex} > {log} 2>&1"


rule claims_figure:
    input:
        claims=rules.claims.output.csv,
        code=code("dicebench.reporting.figures"),
    output:
        png=report(f"{FIGURES}/claims.png", caption="../report/claims_figure.rst", category="Claims"),
        pdf=f"{FIGURES}/claims.pdf",
    threads: threads_for("claims_figure")
    resources:
        **resources_for("claims_figure"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/claims_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims_figure.tsv"
    shell:
        "dicebench figures claims --claims {input.claims} --out {output.png} {output.pdf} > {log} 2>&1"


rule paper:
    input:
        tex=f"{PAPER_DIR}/paper.tex",
        methods=rules.paper_methods.output,
        tables=[f"{FIGURES}/tables/{p}.tex" for p in PAPERS],
        appendix=[
            rules.claims.output.tex,
            rules.conventions.output.tex,
            rules.wilcoxon.output.tex,
            rules.compute.output.tex,
        ],
        claims=rules.claims.output.csv,
        summary_figure=rules.claims_figure.output.pdf,
        figures=wf.paper_figures(config),
        code=code("dicebench.reporting.paper"),
    output:
        report(config["paper_pdf"], caption="../report/paper.rst", category="Paper"),
    threads: threads_for("paper")
    resources:
        **resources_for("paper"),
    conda:
        "../../envs/report.yaml"
    log:
        f"{RESULTS}/logs/paper.log",
    benchmark:
        f"{RESULTS}/benchmarks/paper.tsv"
    shell:
        "dicebench paper --tex {input.tex} --methods {input.methods} --tables {input.tables} "
        "--appendix {input.appendix} --claims {input.claims} --summary-figure {input.summary_figure} "
        "--figures {input.figures} --out {output} > {log} 2>&1"
