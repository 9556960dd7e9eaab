import numpy as np
NORMLAB_PLUGIN = {"name": "raises_plugin", "summary": "forward raises", "reference": "test", "options": {}, "ranks": [2, 5]}
class Layer:
    def __init__(self, channels, spatial, options):
        self.parameters = {}
    def forward(self, x, mode, params, buffers):
        raise RuntimeError("deliberate failure in forward")
    def backward(self, grad_output, params):
        return grad_output, {}
