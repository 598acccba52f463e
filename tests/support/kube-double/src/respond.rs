//! HTTP responses: JSON, `Status` errors, text, and streamed bodies.

use crate::status::ApiError;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

fn with_type(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn json(code: u16, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    with_type(
        code,
        "application/json",
        Full::new(Bytes::from(bytes)).boxed(),
    )
}

pub fn text(bytes: Vec<u8>) -> Response<Body> {
    with_type(200, "text/plain", Full::new(Bytes::from(bytes)).boxed())
}

/// A `Status` body with the error's code; 429 adds `Retry-After: 1`.
pub fn error(e: &ApiError) -> Response<Body> {
    let mut response = json(e.code, &e.body());
    if e.code == 429 {
        response
            .headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
    }
    response
}

/// A chunked body fed by a channel; it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed 200 response (watch events, followed logs).
pub fn stream(rx: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response<Body> {
    with_type(200, content_type, ChannelBody(rx).boxed())
}
