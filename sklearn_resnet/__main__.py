"""``python -m sklearn_resnet``: the command line."""

import sys

from .cli import main

sys.exit(main())
