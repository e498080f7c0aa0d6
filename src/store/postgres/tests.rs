//! The PostgreSQL backend's own tests, against a throwaway server.
