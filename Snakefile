# dicebench: the published experiments on Dice-family losses, end to end.
#   snakemake --cores 2                               # the default run (config/config.yaml)
#   snakemake --cores 2 --configfile mine.yaml        # your run alone (defaults from the schema)
#   snakemake --cores 2 results/<cell>/metrics.csv    # one cell of a table
# The stages live in workflow/rules/, one file each; the code they call in src/dicebench/.

from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/review.smk"


# Never submitted to a cluster: downloads need the internet, tables, figures, claims and the paper
# are light (dicebench.cluster.LOCAL_RULES; tests/test_cluster.py checks they agree).
localrules:
    all,
    download,
    aggregate,
    paper_table,
    wilcoxon,
    claims,
    conventions,
    compute,
    claims_figure,
    learning_curves,
    qualitative,
    gradient_map,
    subpatch,
    lr_sensitivity,
    paper_methods,
    paper,
    viewer,
    bundle,
    bundle_with_weights,
    verify_cell,
    verify_claim,


rule all:
    input:
        wf.targets(config),
    default_target: True
