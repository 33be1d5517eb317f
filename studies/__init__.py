"""The studies: one runnable script per question, each writing one results file."""

# Before anything imports Brian2: models filters setuptools' _get_vc_env warning (see models/__init__.py).
import models  # noqa: F401
