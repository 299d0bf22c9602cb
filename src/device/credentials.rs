//! The login and password a driver proves who it is with, and where the password came
//! from (named in a refused-login message). Never printed: its `Debug` leaves the
//! password out.

/// How a driver finds its device and proves who it is.
#[derive(Clone)]
pub struct Credentials {
    pub login: String,
    pub password: String,
    /// Where the password came from, named in a refused-login message, e.g.
    /// `CATRACA_PASSWORD` or `PORTARIA_PASSWORD (password_env of device portaria-1)`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({}, password from {})",
            self.login, self.source
        )
    }
}
