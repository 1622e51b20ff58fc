"""Live answers checked against an OpenAPI 3.1 document of the project's (the contract)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class Contract:
    def __init__(self, document: Path):
        self.spec = yaml.safe_load(document.read_text())
        self.urn = f"urn:flotilla-{document.parent.name}"
        self.registry = Registry().with_resource(self.urn, Resource.from_contents(self.spec, default_specification=DRAFT202012))

    def validate(self, path: str, status: int, body: bytes, content_type: str) -> None:
        """Validates one answer against the response the document declares for it."""
        responses = self.spec["paths"][path]["get"]["responses"]
        assert str(status) in responses, f"{path} answered {status}, which the contract does not declare"
        media = responses[str(status)]["content"]
        declared = content_type.split(";")[0].strip()
        assert declared in media, f"{path} answered {declared}, the contract declares {list(media)}"
        schema = media[declared]["schema"]
        instance = json.loads(body) if declared.endswith("json") else body.decode()
        resolvable = {"$ref": self.urn + "#" + schema["$ref"][1:]} if "$ref" in schema else schema
        OAS31Validator(resolvable, registry=self.registry).validate(instance)

    def validate_schema(self, name: str, instance: object) -> None:
        """Validates `instance` against the document's component schema `name`."""
        OAS31Validator({"$ref": f"{self.urn}#/components/schemas/{name}"}, registry=self.registry).validate(instance)
