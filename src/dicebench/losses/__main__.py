"""`python -m dicebench.losses`: the loss registry as config/README.md's table."""

from dicebench.losses import markdown_table

print(markdown_table(), end="")
