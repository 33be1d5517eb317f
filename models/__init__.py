"""Neuron models, the Brian2 engine and the ground floor every other package builds on."""

import warnings

# setuptools' distutils warns on every import of Brian2's compiler helpers; nothing here uses MSVC.
warnings.filterwarnings("ignore", message="_get_vc_env is private")
