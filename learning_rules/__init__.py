"""The learning rules (scikit-learn estimators over Brian2 networks, and the BPTT baseline)."""

# Before anything imports Brian2: models filters setuptools' _get_vc_env warning (see models/__init__.py).
import models  # noqa: F401
