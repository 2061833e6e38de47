"""The MLflow pyfunc entry point of a matchwijs model (MLflow "models from code": no pickle).

MLflow copies this file into every logged model and runs it when the model is
loaded; the model class lives in models/tracking.py (the only module importing
MLflow), so loading needs the matchwijs package installed.
"""

from models.tracking import set_bundle_model

set_bundle_model()
