import sys

from dicebench.cli import main

sys.exit(main())
