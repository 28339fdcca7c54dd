#!/usr/bin/env python3
"""Resolve template.yaml the way the pinned SAM CLI does, and print each function's environment.

Run with the Python of the tools virtualenv (scripts/test does):

    ~/.cache/healthplan-tools/venv/bin/python scripts/sam-resolve.py > resolved.json

For each way the template is used, one entry of {logical id: {"binary", "environment",
"architecture", "memory", "timeout"}}:

- "start_api": `sam local start-api`: the parameter overrides of samconfig.toml's
  [default.local_start_api.parameters] and its env_vars file (sam-env.json), through SAM's own
  SamLocalStackProvider, SamFunctionProvider and EnvironmentVariables, exactly what a container
  would get (AWS_SAM_LOCAL, the AWS_LAMBDA_* variables, no shell environment);
- "invoke": the same for `sam local invoke` ([default.local_invoke.parameters]);
- "deploy": a deployed stack as the README's deploy path configures it (the infrastructure
  stack's outputs as parameters, DEPLOY_PARAMETERS below), with the variables Lambda itself sets.

plus "transformed": the template after the SAM transform (samtranslator) with the deploy
parameters, for the IAM checks (each function's role, with the policies SAM adds).

tests/sam_local.rs feeds every environment to plan_http::Config::from_vars, runs the built
bootstraps under the Runtime Interface Emulator with the "deploy" environments, and compares the
roles with the calls each function makes.
"""

import json
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "template.yaml")

# What `sam deploy` gets from the README's deploy path: the infrastructure stack's outputs
# (infrastructure/template.yaml) and the Cognito scope names.
DEPLOY_PARAMETERS = {
    "Architecture": "arm64",
    "SubnetIds": "subnet-0aaaaaaaaaaaaaaa1,subnet-0aaaaaaaaaaaaaaa2",
    "SecurityGroupIds": "sg-0aaaaaaaaaaaaaaa1",
    "RedisUrl": "rediss://healthplan-abc123.serverless.use1.cache.amazonaws.com:6379",
    "RedisCluster": "true",
    "RedisAuthSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:healthplan/redis-AbCdEf",
    "JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI",
    "JwtAudience": "4example0client0id0000000",
    "JwtReadScope": "healthplan/plans.read",
    "JwtWriteScope": "healthplan/plans.write",
    "OrgClaim": "client_id",
    "MskClusterArn": "arn:aws:kafka:us-east-1:111122223333:cluster/healthplan/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-s1",
    "KafkaAuth": "iam",
    "OpenSearchEndpoint": "https://vpc-healthplan-abc123.us-east-1.es.amazonaws.com",
    "OpenSearchDomainArn": "arn:aws:es:us-east-1:111122223333:domain/healthplan",
}

# The variables Lambda sets in every deployed function's environment (the ones the code reads).
LAMBDA_RUNTIME_VARIABLES = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "example-secret",
    "AWS_SESSION_TOKEN": "example-session-token",
}


def samconfig_command(command):
    with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
        return tomllib.load(f)["default"][command]["parameters"]


def parse_overrides(raw):
    from samcli.cli.types import CfnParameterOverridesType

    return CfnParameterOverridesType().convert(raw, None, None)


def functions(overrides):
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(TEMPLATE, parameter_overrides=overrides)
    return list(SamFunctionProvider(stacks, ignore_code_extraction_warnings=True).get_all())


def describe(function, environment):
    return {
        "binary": (function.metadata or {}).get("BuildProperties", {}).get("Binary"),
        "environment": environment,
        "architecture": function.architectures[0] if function.architectures else None,
        "memory": function.memory,
        "timeout": function.timeout,
    }


def sam_local(command):
    """What `sam local <command>` puts into each function's container."""
    from samcli.local.lambdafn.env_vars import EnvironmentVariables

    config = samconfig_command(command)
    overrides = parse_overrides(config["parameter_overrides"])
    with open(os.path.join(ROOT, config["env_vars"])) as f:
        env_file = json.load(f)
    resolved = {}
    for function in functions(overrides):
        variables = (function.environment or {}).get("Variables") if isinstance(function.environment, dict) else None
        file_overrides = dict(env_file.get("Parameters", {}))
        file_overrides.update(env_file.get(function.name, {}))
        environment = EnvironmentVariables(
            function.name,
            function.memory,
            function.timeout,
            function.handler,
            function.logging_config,
            variables=variables,
            shell_env_values={},
            override_values=file_overrides,
            aws_creds={"region": "us-east-1", "key": "local-key", "secret": "local-secret"},
        ).resolve()
        resolved[function.name] = describe(function, environment)
    return resolved


def deploy():
    """Each function's environment in a deployed stack: the template's variables, resolved with the
    deploy parameters (CloudFormation passes strings), plus what Lambda sets."""
    resolved = {}
    for function in functions(DEPLOY_PARAMETERS):
        variables = (function.environment or {}).get("Variables", {}) if isinstance(function.environment, dict) else {}
        environment = {name: str(value) for name, value in variables.items()}
        environment.update(LAMBDA_RUNTIME_VARIABLES)
        environment["AWS_LAMBDA_FUNCTION_NAME"] = function.name
        resolved[function.name] = describe(function, environment)
    return resolved


def transformed():
    """The template after the SAM transform, with the deploy parameters (offline: no IAM lookups)."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(TEMPLATE) as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # The transform wants packaged code; the path plays no part in what is checked.
            resource["Properties"]["CodeUri"] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self):
            return {}

    parameters = dict(DEPLOY_PARAMETERS)
    for name in ("SubnetIds", "SecurityGroupIds"):
        parameters[name] = parameters[name].split(",")
    return transform(template, parameters, NoManagedPolicies())


def conditions(parameters):
    """The value of every condition of the template under these parameters (CloudFormation's
    Equals / Not / And / Or / Condition over parameter Refs, all this template uses)."""
    from samtranslator.yaml_helper import yaml_parse

    with open(TEMPLATE) as f:
        template = yaml_parse(f.read())
    values = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    definitions = template.get("Conditions", {})

    def value(node):
        if isinstance(node, dict) and len(node) == 1:
            (name, argument), = node.items()
            if name == "Ref":
                return str(values[argument])
            if name == "Fn::Equals":
                return value(argument[0]) == value(argument[1])
            if name == "Fn::Not":
                return not value(argument[0])
            if name == "Fn::And":
                return all(value(a) for a in argument)
            if name == "Fn::Or":
                return any(value(a) for a in argument)
            if name == "Condition":
                return value(definitions[argument])
            raise ValueError(f"unsupported in a condition: {name}")
        return str(node)

    return {name: value(definition) for name, definition in definitions.items()}


def main():
    result = {
        "conditions": conditions(DEPLOY_PARAMETERS),
        "start_api": sam_local("local_start_api"),
        "invoke": sam_local("local_invoke"),
        "deploy": deploy(),
        "deploy_parameters": DEPLOY_PARAMETERS,
        "transformed": transformed(),
    }
    json.dump(result, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
