export * from "./close-codes.js";
export * from "./errors.js";
export * from "./moderation.js";
export * from "./seed.js";
export * from "./v1.js";
