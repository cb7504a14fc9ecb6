"""gRPC API with Python grpcio (Debian): Generate streaming, health, reflection, cancel and deadline,
error codes, and REST/gRPC agreement on greedy token ids."""

import json
import os
import subprocess
import sys
import tempfile
import time

import grpc
import requests

from longbow_server import Checks, LongbowServer, parse_args


def generate_stubs(source_dir):
    """Compiles proto/longbow.proto and the health/reflection client protos into a temp dir."""
    out = tempfile.mkdtemp(prefix="longbow-e2e-grpc-")
    repo = os.path.abspath(os.path.join(source_dir, "..", ".."))
    subprocess.run(["protoc", "-I" + os.path.join(source_dir, "protos"), "-I" + repo, "--python_out=" + out,
                    "--grpc_out=" + out, "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "health.proto",
                    "reflection.proto", "proto/longbow.proto", "proto/grpc_reflection_v1.proto"], check=True)
    sys.path.insert(0, out)


def collect(stream):
    ids, text, finish, usage, messages = [], "", None, None, 0
    for msg in stream:
        messages += 1
        ids += list(msg.token_ids)
        text += msg.text
        if msg.finish_reason:
            finish = msg.finish_reason
        if msg.HasField("usage"):
            usage = msg.usage
    return ids, text, finish, usage, messages


def main():
    args = parse_args(sys.argv[1:])
    generate_stubs(args.source_dir)
    import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc  # noqa: E401
    from proto import longbow_pb2 as pb, longbow_pb2_grpc as pb_grpc

    c = Checks()
    with LongbowServer(args.longbow) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        stub = pb_grpc.LongbowStub(channel)

        # Health and reflection.
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        c.equal(health.Check(health_pb2.HealthCheckRequest(service="")).status, serving, "overall health")
        c.equal(health.Check(health_pb2.HealthCheckRequest(service="longbow.v1.Longbow")).status, serving,
                "service health")
        try:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
            c.check(False, "unknown service health must fail")
        except grpc.RpcError as e:
            c.equal(e.code(), grpc.StatusCode.NOT_FOUND, "unknown service health")
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(reflection.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="longbow.v1.Longbow")])))
        services = {s.name for s in replies[0].list_services_response.service}
        c.check({"longbow.v1.Longbow", "grpc.health.v1.Health"} <= services, "reflection lists services: %s" % services)
        c.check(len(replies[1].file_descriptor_response.file_descriptor_proto) >= 1, "reflection returns descriptors")
        # Reflection v1 (what current grpcurl asks first) answers the same from the descriptor pool.
        from proto import grpc_reflection_v1_pb2 as r1, grpc_reflection_v1_pb2_grpc as r1_grpc
        from google.protobuf import descriptor_pb2
        replies = list(r1_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([
            r1.ServerReflectionRequest(list_services=""),
            r1.ServerReflectionRequest(file_containing_symbol="longbow.v1.Longbow.Generate"),
            r1.ServerReflectionRequest(file_by_filename="proto/longbow.proto"),
            r1.ServerReflectionRequest(file_containing_symbol="no.such.Service")])))
        services = {s.name for s in replies[0].list_services_response.service}
        c.check({"longbow.v1.Longbow", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                 "grpc.reflection.v1alpha.ServerReflection"} <= services, "reflection v1 lists services: %s" % services)
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in replies[1].file_descriptor_response.file_descriptor_proto]
        c.check(files and files[0].name == "proto/longbow.proto" and
                any(s.name == "Longbow" for s in files[0].service), "reflection v1 describes the service")
        c.equal(len(replies[2].file_descriptor_response.file_descriptor_proto), 0,
                "a file this stream already sent is not sent again")
        c.equal(replies[3].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0], "reflection v1: unknown symbol")

        # ListModels and Tokenize agree with REST.
        models = stub.ListModels(pb.ListModelsRequest())
        model = models.models[0].id
        c.equal(model, requests.get(server.url + "/v1/models").json()["data"][0]["id"], "same model id")
        prompt = "Once upon a time"
        rest_tokens = requests.post(server.url + "/tokenize", json={"prompt": prompt}).json()["tokens"]
        tokens = list(stub.Tokenize(pb.TokenizeRequest(text=prompt, add_special_tokens=True)).token_ids)
        c.equal(tokens, rest_tokens, "Tokenize == /tokenize")

        # Greedy Generate vs REST, text prompt and token-id prompt.
        for name, rest_prompt, request in [
            ("text", prompt, pb.GenerateRequest(model=model, text=prompt)),
            ("token ids", rest_tokens, pb.GenerateRequest(model=model, token_ids=pb.TokenIds(ids=rest_tokens))),
        ]:
            request.sampling.temperature = 0
            request.stop.max_tokens = 12
            ids, text, finish, usage, messages = collect(stub.Generate(request))
            rest = requests.post(server.url + "/v1/completions", json={
                "model": model, "prompt": rest_prompt, "max_tokens": 12, "temperature": 0,
                "return_token_ids": True}).json()["choices"][0]
            c.check(len(ids) >= 1, "Generate (%s) produced tokens" % name)
            c.equal(ids, rest["token_ids"], "gRPC == REST greedy token ids (%s prompt)" % name)
            c.equal(text, rest["text"], "gRPC == REST text (%s prompt)" % name)
            c.equal(pb.FinishReason.Name(finish).replace("FINISH_REASON_", "").lower(), rest["finish_reason"],
                    "same finish reason (%s)" % name)
            c.check(usage is not None and usage.completion_tokens == len(ids) and usage.prompt_tokens ==
                    len(rest_tokens), "usage on the last message (%s)" % name)
            c.check(messages >= 2, "streamed in several messages (%s)" % name)

        # Logprobs and n.
        request = pb.GenerateRequest(model=model, text=prompt, logprobs=2)
        request.sampling.temperature = 0
        request.sampling.n = 2
        request.stop.max_tokens = 4
        msgs = list(stub.Generate(request))
        c.check(all(len(m.logprobs) == len(m.token_ids) for m in msgs), "one logprob per token")
        c.check(all(len(lp.top) == 2 for m in msgs for lp in m.logprobs), "two alternatives per token")
        c.equal(sorted({m.index for m in msgs}), [0, 1], "n=2 choice indices")
        # prompt_logprobs: on the first message, equal to REST's.
        request = pb.GenerateRequest(model=model, text=prompt, prompt_logprobs=1)
        request.sampling.temperature = 0
        request.stop.max_tokens = 2
        msgs = list(stub.Generate(request))
        carried = [i for i, m in enumerate(msgs) if len(m.prompt_logprobs) > 0]
        c.equal(carried[:1], [0] if carried else [], "prompt logprobs on the first message")
        rest_pl = requests.post(server.url + "/v1/completions", json={
            "model": model, "prompt": prompt, "max_tokens": 2, "temperature": 0,
            "prompt_logprobs": 1}).json()["choices"][0]["prompt_logprobs"]
        grpc_pl = list(msgs[0].prompt_logprobs) if msgs else []
        c.equal(len(grpc_pl), len(rest_pl) - 1, "gRPC prompt logprobs: one per prompt token after the first")
        c.check(all(abs(e[str(lp.token_id)]["logprob"] - lp.logprob) < 1e-6 and e[str(lp.token_id)]["rank"] == lp.rank
                    for lp, e in zip(grpc_pl, rest_pl[1:])), "gRPC prompt logprobs == REST (logprob and rank)")

        # Errors.
        def code_of(request, timeout=30):
            try:
                collect(stub.Generate(request, timeout=timeout))
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()
        c.equal(code_of(pb.GenerateRequest(model=model)), grpc.StatusCode.INVALID_ARGUMENT, "no prompt")
        c.equal(code_of(pb.GenerateRequest(model="nope", text="x")), grpc.StatusCode.NOT_FOUND, "unknown model")
        bad = pb.GenerateRequest(model=model, text="x")
        bad.sampling.temperature = -1
        c.equal(code_of(bad), grpc.StatusCode.INVALID_ARGUMENT, "bad temperature")
        # The same bounds as REST (temperature in [0, 2], top_p in (0, 1]).
        for field, value in [("temperature", 5.0), ("top_p", 0.0), ("presence_penalty", 3.0), ("min_p", 1.5)]:
            bad = pb.GenerateRequest(model=model, text="x")
            setattr(bad.sampling, field, value)
            c.equal(code_of(bad), grpc.StatusCode.INVALID_ARGUMENT, "%s %s refused as REST refuses it" % (field, value))

        # Structured output over gRPC: the grammar engine REST uses.
        choice = pb.GenerateRequest(model=model, text="Pick one", structured_output=pb.StructuredOutput(
            choice=pb.ChoiceList(choices=["alpha", "beta gamma"])))
        choice.sampling.seed = 1
        _, text, finish, _, _ = collect(stub.Generate(choice, timeout=60))
        c.check(text in ("alpha", "beta gamma") and finish == pb.FINISH_REASON_STOP, "gRPC choice: %r" % text)
        regex = pb.GenerateRequest(model=model, text="Digits", structured_output=pb.StructuredOutput(regex="[0-9]{3}-x"))
        _, text, _, _, _ = collect(stub.Generate(regex, timeout=60))
        c.check(len(text) == 5 and text[:3].isdigit() and text.endswith("-x"), "gRPC regex: %r" % text)
        schema = pb.GenerateRequest(model=model, text="JSON", structured_output=pb.StructuredOutput(
            json_schema='{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}'))
        _, text, _, _, _ = collect(stub.Generate(schema, timeout=60))
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        c.check(isinstance(parsed, dict) and isinstance(parsed.get("ok"), bool), "gRPC json_schema: %r" % text)
        unserved = pb.GenerateRequest(model=model, text="x", structured_output=pb.StructuredOutput(
            json_schema='{"type": "string", "format": "email"}'))
        c.equal(code_of(unserved), grpc.StatusCode.INVALID_ARGUMENT, "a schema keyword the engine lacks")
        c.equal(code_of(pb.GenerateRequest(model=model, token_ids=pb.TokenIds(ids=[1] * 200000))),
                grpc.StatusCode.INVALID_ARGUMENT, "prompt longer than the context")

        # Cancel mid-stream: the request ends and its pages are freed.
        server.wait_idle()
        long = pb.GenerateRequest(model=model, text=prompt)
        long.stop.max_tokens = 50000
        long.stop.ignore_eos = True
        call = stub.Generate(long)
        got = 0
        for _ in call:
            got += 1
            if got == 3:
                break
        m = server.metrics()
        c.check(m["longbow_num_requests_running"] == 1 and m["longbow_kv_cache_pages_used"] >= 1,
                "running with pages before cancel")
        call.cancel()
        after = server.wait_idle(timeout=10)
        c.check(after["longbow_request_failure_total"] >= 1, "cancelled request counted")

        # Deadline: DEADLINE_EXCEEDED and the request is aborted too.
        start = time.time()
        c.equal(code_of(long, timeout=0.5), grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
        c.check(time.time() - start < 5, "deadline honoured promptly")
        server.wait_idle(timeout=10)
        channel.close()

    # Authentication and loading/health on a keyed server.
    with LongbowServer(args.longbow, "--api-key", "k1") as server:
        channel = grpc.insecure_channel(server.grpc_target)
        stub = pb_grpc.LongbowStub(channel)
        try:
            stub.ListModels(pb.ListModelsRequest())
            c.check(False, "ListModels without a key must fail")
        except grpc.RpcError as e:
            c.equal(e.code(), grpc.StatusCode.UNAUTHENTICATED, "no key")
        models = stub.ListModels(pb.ListModelsRequest(), metadata=[("authorization", "Bearer k1")])
        c.equal(len(models.models), 1, "key accepted")
        health = health_pb2_grpc.HealthStub(channel)
        c.equal(health.Check(health_pb2.HealthCheckRequest()).status, health_pb2.HealthCheckResponse.SERVING,
                "health needs no key")
        channel.close()
    c.finish()


if __name__ == "__main__":
    main()
