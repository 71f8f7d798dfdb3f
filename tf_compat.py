"""The few places where TF 1.15 and TF 2.15 need different code.

Everything else uses `tensorflow.compat.v1` and behaves the same on both
runtimes.  Keep runtime checks here so there is one place to look.
"""

import tensorflow.compat.v1 as tf

IS_TF2 = tf.__version__.startswith("2.")
