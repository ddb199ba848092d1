import type { Principal } from "./token-verifier.js";

/**
 * Who may open the presenter socket of a room: only the room's own user
 * (`principal.userId === roomId`). Without `presenterRoles` (PRESENTER_ROLES
 * unset) any token of that user may: the identity provider's tokens carry no
 * role. With it, only a token holding one of those roles (case-insensitive);
 * an empty list lets nobody in. An operator's token (OPERATOR_ROLE) never does: it reads and
 * manages the log, it does not take part in a room.
 */
export function mayOpenPresenter(
  principal: Principal,
  roomId: number,
  presenterRoles: readonly string[] | undefined,
): boolean {
  if (principal.userId !== roomId || principal.operator === true) return false;
  if (presenterRoles === undefined) return true;
  return presenterRoles.some((role) => principal.roles.includes(role.toLowerCase()));
}
