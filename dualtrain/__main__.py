import sys

from dualtrain.cli import main

sys.exit(main())
