"""A Keras-compatible layer on funcgrad: ``from funcgrad import keras``.

Keras programs run with only the import changed::

    from funcgrad import keras

    model = keras.Sequential([
        keras.layers.Dense(10, activation="relu", input_shape=(n_features,)),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2)
    model.evaluate(x, y); model.predict(x); model.summary()

It is a thin shell over the functional core, which stays as it is: layers are
:mod:`funcgrad.nn` modules, optimizers :mod:`funcgrad.optim` transformations, and ``fit``
jits a pure training step (see :mod:`funcgrad.keras.models`).
"""

from funcgrad.keras import activations as activations
from funcgrad.keras import callbacks as callbacks
from funcgrad.keras import layers as layers
from funcgrad.keras import losses as losses
from funcgrad.keras import metrics as metrics
from funcgrad.keras import models as models
from funcgrad.keras import optimizers as optimizers
from funcgrad.keras import utils as utils
from funcgrad.keras.layers import Input as Input
from funcgrad.keras.models import Sequential as Sequential
from funcgrad.keras.models import load_model as load_model
