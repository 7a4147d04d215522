//! Operations (issue 13): what an operator on call reaches with stock tools.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_e2e::app::spawn_system;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// gRPC reflection: a stock client (grpcurl) lists every service of the API and gets the
/// schema of a method, over the same mutual TLS as any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service() {
    let sys = spawn_system(20260401).await;
    let channel = kokuho_runtime::tls::endpoint(sys.system().endpoint(), sys.system().client_tls())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest { host: String::new(), message_request: Some(m) };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("kokuho.intake.v1.IntakeService".into())),
    ];
    let mut answers = client.server_reflection_info(futures::stream::iter(requests)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "kokuho.intake.v1.IntakeService",
        "kokuho.results.v1.ResultService",
        "kokuho.identity.v1.IdentityService",
        "kokuho.continuity.v1.ContinuityService",
        "kokuho.kogaku.v1.KogakuService",
        "kokuho.relay.v1.RelayService",
        "kokuho.midserver.v1.MidServerService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} not listed: {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(file)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor")
    };
    assert!(!file.file_descriptor_proto.is_empty(), "the method's schema");
    sys.stop().await;
}
