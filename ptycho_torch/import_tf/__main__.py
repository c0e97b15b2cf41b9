"""``python -m ptycho_torch.import_tf``."""

import sys

from ptycho_torch.import_tf.cli import main

sys.exit(main())
