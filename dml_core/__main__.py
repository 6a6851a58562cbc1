import sys

from dml_core.cli import main

sys.exit(main())
