//! See DESIGN.md contract 3 (owned by the render/check work).
