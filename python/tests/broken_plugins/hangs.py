NORMLAB_PLUGIN = {"name": "no_layer", "summary": "declares a method but defines no Layer class", "options": {}}
