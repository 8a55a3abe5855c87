"""dicebench: the published experiments on Dice-family losses, reproduced as one workflow.

Data flows one way through the package:
data -> preprocessing -> training -> inference -> evaluation -> reporting.
"""

__version__ = "0.1.0"
