"""Offline JSON schemas for what ``attnx k8s`` writes, and a validator (no cluster needed).

Minimal by design: the KServe CRD fields attnx emits (``serving.kserve.io/v1beta1`` InferenceService predictor
with a ``model``, ``serving.kserve.io/v1alpha1`` ServingRuntime) and the Kubernetes core types they embed
(``Container``, ``Probe``, ``ResourceRequirements``, ``ContainerPort``, ``EnvVar``, ``ObjectMeta``), with the
types, enums, required fields and formats of the upstream OpenAPI schemas (KServe's CRDs in
``config/crd/full``, Kubernetes' ``io.k8s.api.core.v1``). Objects are closed (``additionalProperties: false``)
wherever upstream's are, so a misspelt field fails here rather than being dropped by the API server.

:func:`validate` uses ``jsonschema`` when installed and otherwise :func:`check`, a small checker for the
keywords used here (type, properties, required, additionalProperties, items, enum, pattern, minimum, maxLength,
minItems, oneOf of types, anyOf).
"""

from __future__ import annotations

import re
from typing import Any

from attnx.core.errors import UserError

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY = rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"  # Kubernetes resource.Quantity
INT_OR_STRING = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                           {"type": "string", "pattern": r"^[a-z]([-a-z0-9]*)$"}]}  # fmt: skip
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _obj(props: dict[str, Any], required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


HTTP_GET = _obj({
    "path": {"type": "string", "pattern": "^/"}, "port": INT_OR_STRING, "host": {"type": "string"},
    "scheme": {"enum": ["HTTP", "HTTPS"]},
    "httpHeaders": {"type": "array", "items": _obj({"name": {"type": "string"}, "value": {"type": "string"}},
                                                  ["name", "value"])},
}, ["port"])  # fmt: skip
PROBE = _obj({
    "httpGet": HTTP_GET,
    "tcpSocket": _obj({"port": INT_OR_STRING, "host": {"type": "string"}}, ["port"]),
    "grpc": _obj({"port": {"type": "integer", "minimum": 1, "maximum": 65535}, "service": {"type": "string"}},
                 ["port"]),
    "exec": _obj({"command": {"type": "array", "items": {"type": "string"}}}),
    "initialDelaySeconds": {"type": "integer", "minimum": 0}, "periodSeconds": {"type": "integer", "minimum": 1},
    "timeoutSeconds": {"type": "integer", "minimum": 1}, "failureThreshold": {"type": "integer", "minimum": 1},
    "successThreshold": {"type": "integer", "minimum": 1},
    "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
})  # fmt: skip
RESOURCE_LIST = {
    "type": "object",
    "propertyNames": {"pattern": r"^([a-z0-9.-]+/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
    "additionalProperties": {"anyOf": [{"type": "string", "pattern": QUANTITY}, {"type": "integer", "minimum": 0}]},
}
RESOURCES = _obj({"requests": RESOURCE_LIST, "limits": RESOURCE_LIST, "claims": {"type": "array"}})
PORT = _obj({
    "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
    "name": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 15},
    "protocol": {"enum": ["TCP", "UDP", "SCTP"]}, "hostPort": {"type": "integer"}, "hostIP": {"type": "string"},
}, ["containerPort"])  # fmt: skip
ENV = _obj({"name": {"type": "string", "minLength": 1}, "value": {"type": "string"}, "valueFrom": {"type": "object"}},
           ["name"])  # fmt: skip
STRINGS = {"type": "array", "items": {"type": "string"}}
CONTAINER_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 63},
    "image": {"type": "string", "minLength": 1},
    "command": STRINGS, "args": STRINGS, "workingDir": {"type": "string"},
    "ports": {"type": "array", "items": PORT}, "env": {"type": "array", "items": ENV},
    "resources": RESOURCES, "readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE,
    "imagePullPolicy": {"enum": ["Always", "Never", "IfNotPresent"]},
    "securityContext": {"type": "object"}, "volumeMounts": {"type": "array"},
}  # fmt: skip
CONTAINER = _obj(CONTAINER_FIELDS, ["name"])
METADATA = _obj({
    "name": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 63},
    "namespace": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 63},
    "labels": STR_MAP, "annotations": STR_MAP,
}, ["name"])  # fmt: skip

# serving.kserve.io/v1beta1 InferenceService: the predictor (ComponentExtensionSpec + PodSpec) and its model
# (ModelSpec: modelFormat, runtime, runtimeVersion, protocolVersion, storageUri, and the v1.Container fields).
MODEL = _obj({
    **{k: v for k, v in CONTAINER_FIELDS.items() if k != "name"},
    "name": {"type": "string"},
    "modelFormat": _obj({"name": {"type": "string", "minLength": 1}, "version": {"type": "string"}}, ["name"]),
    "runtime": {"type": "string", "pattern": DNS1123_LABEL},
    "runtimeVersion": {"type": "string", "minLength": 1},
    "protocolVersion": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]},
    "storageUri": {"type": "string", "pattern": r"^(gs|s3|pvc|hdfs|webhdfs|oci|hf|https?)://.+"},
}, ["modelFormat"])  # fmt: skip
PREDICTOR = _obj({
    "model": MODEL,
    "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 0},
    "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]}, "scaleTarget": {"type": "integer", "minimum": 1},
    "containerConcurrency": {"type": "integer", "minimum": 0}, "timeout": {"type": "integer", "minimum": 0},
    "serviceAccountName": {"type": "string"}, "nodeSelector": STR_MAP, "tolerations": {"type": "array"},
    "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
}, ["model"])  # fmt: skip
INFERENCE_SERVICE = _obj({
    "apiVersion": {"const": "serving.kserve.io/v1beta1"},
    "kind": {"const": "InferenceService"},
    "metadata": _obj({**METADATA["properties"],
                      "name": {"type": "string", "pattern": DNS1035_LABEL, "maxLength": 63}}, ["name"]),
    "spec": _obj({"predictor": PREDICTOR}, ["predictor"]),
}, ["apiVersion", "kind", "metadata", "spec"])  # fmt: skip

# serving.kserve.io/v1alpha1 ServingRuntime (ServingRuntimeSpec).
SERVING_RUNTIME = _obj({
    "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
    "kind": {"enum": ["ServingRuntime", "ClusterServingRuntime"]},
    "metadata": METADATA,
    "spec": _obj({
        "annotations": STR_MAP, "labels": STR_MAP,
        "supportedModelFormats": {"type": "array", "minItems": 1, "items": _obj({
            "name": {"type": "string", "minLength": 1}, "version": {"type": "string"},
            "autoSelect": {"type": "boolean"}, "priority": {"type": "integer", "minimum": 1},
        }, ["name"])},
        "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
        "multiModel": {"type": "boolean"}, "disabled": {"type": "boolean"},
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
    }, ["containers"]),
}, ["apiVersion", "kind", "metadata", "spec"])  # fmt: skip

SCHEMAS = {"InferenceService": INFERENCE_SERVICE, "ServingRuntime": SERVING_RUNTIME}


def errors(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every violation of ``schema`` in ``instance``, one line each (the fallback checker)."""
    out: list[str] = []
    if "const" in schema and instance != schema["const"]:
        out.append(f"{where}: must be {schema['const']!r}, got {instance!r}")
    if "enum" in schema and instance not in schema["enum"]:
        out.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if "anyOf" in schema and all(errors(instance, s, where) for s in schema["anyOf"]):
        out.append(f"{where}: {instance!r} matches none of the allowed forms")
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(instance, int) or isinstance(instance, bool):
            return [*out, f"{where}: must be an integer, got {instance!r}"]
    elif kind in types and not isinstance(instance, types[kind]):
        return [*out, f"{where}: must be {kind}, got {type(instance).__name__}"]
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            out.append(f"{where}: {instance} < {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            out.append(f"{where}: {instance} > {schema['maximum']}")
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            out.append(f"{where}: {instance!r} does not match {schema['pattern']}")
        if len(instance) > schema.get("maxLength", len(instance)) or len(instance) < schema.get("minLength", 0):
            out.append(f"{where}: {instance!r} has a length out of range")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            out.append(f"{where}: needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(instance):
            if "items" in schema:
                out += errors(item, schema["items"], f"{where}[{i}]")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing required field '{k}'" for k in schema.get("required", []) if k not in instance]
        extra = schema.get("additionalProperties", True)
        for k, v in instance.items():
            if "propertyNames" in schema:
                out += errors(k, schema["propertyNames"], f"{where}.{k} (name)")
            if k in props:
                out += errors(v, props[k], f"{where}.{k}")
            elif extra is False:
                out.append(f"{where}: unknown field '{k}'")
            elif isinstance(extra, dict):
                out += errors(v, extra, f"{where}.{k}")
    return out


def validate(obj: dict[str, Any], where: str = "") -> None:
    """Raise (UserError) when ``obj`` does not fit the schema of its ``kind``; every problem, one per line."""
    kind = obj.get("kind")
    schema = SCHEMAS.get("ServingRuntime" if kind == "ClusterServingRuntime" else str(kind))
    if schema is None:
        raise UserError(f"{where or 'manifest'}: no schema for kind {kind!r}")
    try:
        import jsonschema
    except ImportError:
        problems = errors(obj, schema)
    else:
        validator = jsonschema.Draft202012Validator(schema)
        problems = [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    if problems:
        raise UserError(f"{where or kind} does not fit the {kind} schema:\n  " + "\n  ".join(problems[:20]))
