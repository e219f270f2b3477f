/** `UserChange` and `ChangeKind` exactly as CONTRACT.md §3 declares them (subscription events). */
import 'reflect-metadata';
import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { User } from './user-type.js';

/** GraphQL enum `ChangeKind`; the values are the names, as `LiveSource` emits them. */
export enum ChangeKind {
  SNAPSHOT = 'SNAPSHOT',
  UPDATED = 'UPDATED',
  DELETED = 'DELETED',
}
registerEnumType(ChangeKind, {
  name: 'ChangeKind',
  description:
    'SNAPSHOT: the current state (first event); UPDATED: a commit changed the user; DELETED: the users row is gone.',
});

@ObjectType({ description: 'One change of a watched user.' })
export class UserChange {
  @Field(() => ID)
  userId!: string;

  @Field(() => ChangeKind)
  kind!: ChangeKind;

  @Field(() => User, { nullable: true, description: 'The new state; null on DELETED.' })
  user!: User | null;
}
