"""dfnb: the library behind the face-forgery reproducibility book.

Modules (one concept each):

- ``dfnb.data``     synthetic face-forgery benchmark, corruptions, real data-set loaders
- ``dfnb.metrics``  detection and localization metrics (plain functions over arrays)
- ``dfnb.cam``      Grad-CAM / Score-CAM for timm CNNs and ViTs
- ``dfnb.engine``   the one training / evaluation harness every chapter uses
- ``dfnb.models``   backbones and methods, created by name (``dfnb.create_model``)
- ``dfnb.papers``   the three papers' tables, transcribed as data
- ``dfnb.viz``      figures and the interactive / static mask viewers
- ``dfnb.runner``   executes a chapter with papermill into ``results/<profile>/<chapter>/``
"""

__version__ = "0.1.0"

from dfnb.registry import create_model, list_models, register_model  # noqa: E402,F401
