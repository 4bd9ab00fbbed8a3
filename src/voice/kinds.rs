//! The words the ports and the metrics share for what went wrong with a vendor: which one
//! ([`Provider`], a metrics label), what kind of failure ([`ErrorKind`]) and how a session was
//! recovered ([`ReconnectKind`]). A leaf module: each vendor maps its own errors to a kind, and
//! the metrics only count, so neither imports the other.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Deepgram,
    OpenAi,
    ElevenLabs,
    /// An OpenAI-compatible speech endpoint (`/v1/audio/speech`: OpenAI, Kokoro, Piper, …).
    OpenAiSpeech,
    Exotel,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::OpenAi => "openai",
            Provider::ElevenLabs => "elevenlabs",
            Provider::OpenAiSpeech => "openai_speech",
            Provider::Exotel => "exotel",
        }
    }
}

/// What went wrong, at the level an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer (or no first token) in time.
    Timeout,
    /// The connection could not be made (DNS, TCP, TLS, WebSocket handshake).
    Connect,
    /// An HTTP 4xx answer (429 rate limits and quota included).
    Http4xx,
    /// An HTTP 5xx answer.
    Http5xx,
    /// An answer that does not follow the protocol (bad JSON, a stream cut before its end).
    Protocol,
    /// An error reported inside a stream that had started fine.
    Stream,
    /// An open socket dropped mid-call.
    Dropped,
    /// A signal the call waited for never came within its bound (an end of turn, a mark echo):
    /// the call went on without it.
    Stalled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Stream => "stream_error",
            ErrorKind::Dropped => "dropped",
            ErrorKind::Stalled => "stalled",
        }
    }

    /// The class of an HTTP error status (anything below 500 counts as 4xx).
    pub fn from_status(status: u16) -> Self {
        if status >= 500 {
            ErrorKind::Http5xx
        } else {
            ErrorKind::Http4xx
        }
    }
}

/// How a call got a provider back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectKind {
    /// A new socket, with the unfinalised audio replayed (Deepgram).
    Reconnect,
    /// The rest of a turn spoken over the HTTP stream after the WebSocket failed (ElevenLabs).
    HttpFallback,
}

impl ReconnectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectKind::Reconnect => "reconnect",
            ReconnectKind::HttpFallback => "http_fallback",
        }
    }
}
