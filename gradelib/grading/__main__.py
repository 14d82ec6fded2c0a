"""``python -m gradelib.grading <step> --course DIR ...``: see ``gradelib.grading.cli``."""

import sys

from gradelib.grading.cli import main

sys.exit(main())
