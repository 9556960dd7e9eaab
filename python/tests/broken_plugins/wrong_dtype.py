import numpy as np
NORMLAB_PLUGIN = {"name": "wrong_dtype", "summary": "forward returns integers", "reference": "test", "options": {}, "ranks": [2, 5]}
class Layer:
    def __init__(self, channels, spatial, options):
        self.parameters = {}
    def forward(self, x, mode, params, buffers):
        return np.zeros(x.shape, dtype=np.int64)
    def backward(self, grad_output, params):
        return grad_output, {}
