NORMLAB_PLUGIN = {"name": "broken_syntax", "summary": "a plugin with a syntax error", "options": {}}
def forward(x:
    return x
