# Registers the verify plugin: --subject, --subject-file, --require-subjects, --device, the
# `claim` marker and the subject/params/verdict fixtures (see src/verify/plugin.py).
pytest_plugins = ["verify.plugin"]
