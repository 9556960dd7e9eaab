import numpy as np
NORMLAB_PLUGIN = {"name": "wrong_shape", "summary": "forward returns the wrong shape", "reference": "test", "options": {}, "ranks": [2, 5]}
class Layer:
    def __init__(self, channels, spatial, options):
        self.parameters = {}
    def forward(self, x, mode, params, buffers):
        return x[:, :1].copy()
    def backward(self, grad_output, params):
        return grad_output, {}
