"""OpenVINO (CPU): the pooled ``OpenVinoRunner`` and the compiled-model helpers ``attnx build`` uses."""
