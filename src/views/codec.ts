/**
 * Stored form of a view: the bytes `GET /users/:id` sends, followed by the version, so the REST
 * route answers with a zero-copy slice and GraphQL parses at most two small JSON documents.
 *
 *   [u32 LE length of rest JSON][rest JSON: seed 002's object][version JSON]
 */
import { REST_FIELDS, type UserInformation, type ViewVersion } from './user-information.js';

export function encodeView(view: UserInformation): Buffer {
  const rest: Record<string, unknown> = {};
  for (const f of REST_FIELDS) rest[f] = view[f];
  const restJson = Buffer.from(JSON.stringify(rest));
  const versionJson = Buffer.from(JSON.stringify(view.version));
  const out = Buffer.allocUnsafe(4 + restJson.length + versionJson.length);
  out.writeUInt32LE(restJson.length, 0);
  restJson.copy(out, 4);
  versionJson.copy(out, 4 + restJson.length);
  return out;
}

/** Seed 002's JSON object (no version), as a view onto `bytes`. */
export function restJsonOf(bytes: Buffer): Buffer {
  return bytes.subarray(4, 4 + bytes.readUInt32LE(0));
}

export function decodeView(bytes: Buffer): UserInformation {
  const end = 4 + bytes.readUInt32LE(0);
  // The parsed object is fresh and ours: add the version to it rather than copying 13 fields into a new one.
  const view = JSON.parse(bytes.toString('utf8', 4, end)) as {
    -readonly [K in keyof UserInformation]?: UserInformation[K];
  };
  view.version = JSON.parse(bytes.toString('utf8', end)) as ViewVersion;
  return view as UserInformation;
}
