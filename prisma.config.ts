import { existsSync } from "node:fs";
import { defineConfig } from "prisma/config";

// `prisma generate` needs only WASM, but the CLI looks for a native schema
// engine first and tries to download it. Pointing it at any existing file
// keeps generate offline; migrations are applied by the server's own runner
// (same folder format and `_prisma_migrations` table as `prisma migrate deploy`).
if (!process.env.PRISMA_SCHEMA_ENGINE_BINARY || !existsSync(process.env.PRISMA_SCHEMA_ENGINE_BINARY)) {
  process.env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
}

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost:5432/chatrelay" },
});
