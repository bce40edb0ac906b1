"""``python -m lightocr_ingest.cli``: the same as the ``lightocr-ingest`` command."""

import sys

from . import main

sys.exit(main())
