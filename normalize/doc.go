// Package normalize holds the response normalization rules and the
// structural diff shared by live and batch comparison: ignored JSON paths and
// headers, arrays sorted before comparing, intended changes applied to one
// side, numeric tolerance. It depends on nothing in replay but schemas and
// does no I/O.
package normalize
