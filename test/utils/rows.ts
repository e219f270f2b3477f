/** Contract rows for materializer and store tests. */
import type { Row } from '../../src/views/source.js';

/** A users row with only a username. */
export const userRow = (username: string): Row => ({
  table: 'users',
  username,
  name: null,
  description: null,
  location: null,
  webPageUrl: null,
  joinedDate: null,
  profileImageUrl: null,
  backgroundImageUrl: null,
});
