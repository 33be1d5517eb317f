"""Neuron models, the Brian2 engine and the ground floor every other package builds on."""

import warnings

# Brian2's compiler helpers import setuptools' distutils MSVC module, which warns on import
# ("_get_vc_env is private"); nothing here uses MSVC. Every package of the project imports this one
# before anything else, so the filter is in place before any command imports Brian2, in its worker
# processes too (forked ones inherit it; spawned ones import the project's package of their task first).
warnings.filterwarnings("ignore", message="_get_vc_env is private")
