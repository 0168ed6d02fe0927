// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Overlaps validator rewards
/// @notice Once per eon the operator commits the Merkle root of every validator's
/// cumulative reward; a validator claims the difference between its cumulative
/// amount and what it already claimed. Funds arrive through `receive`.
/// @dev Leaf: keccak256(bytes.concat(keccak256(abi.encode(account, cumulative)))),
/// internal nodes hash sorted pairs (OpenZeppelin MerkleProof). Funds leave only by a
/// valid claim. A committed root is first PENDING: it becomes the claimable root
/// `challengeBlocks` blocks after the block it landed in, and until then the guardian
/// may cancel it. A newer commit while a root is pending replaces it (amounts are
/// cumulative, so the newer root subsumes the older). `challengeBlocks` x block time
/// must therefore be shorter than an eon, or roots keep replacing each other and none
/// ever becomes claimable. The guardian may also rotate the operator and itself; it
/// can never move funds.
///
/// Validators may also stake ETH bound to their Ed25519 key (the hub admits a key by
/// the stake of its payout address). Each address holds its own position on a key,
/// so nobody can keep a key from being staked on by staking on it first; only the
/// position's address adds to it, asks to unstake, and after `unbondingSeconds`
/// takes its whole amount back.
/// Staked wei is kept apart from the reward pool (`totalStaked`): roots and claims
/// are paid only from what the contract holds beyond it. There is no slashing.
contract OverlapsRewards is ReentrancyGuard {
    /// @notice The only address that may commit roots (the guardian may replace it).
    address public operator;
    /// @notice The only address that may cancel a pending root or rotate the roles.
    address public guardian;
    /// @notice How many blocks a committed root waits before claims may use it.
    uint64 public immutable challengeBlocks;
    /// @notice Seconds between `requestUnstake` and the first `unstake` that pays.
    uint64 public immutable unbondingSeconds;

    // The claimable root as last written; `eon()`, `root()` and `committedTotal()`
    // report it with a matured pending root already promoted.
    uint64 private _eon;
    bytes32 private _root;
    uint256 private _committedTotal;

    // The pending root (eon 0: none) and the first block where it is claimable.
    uint64 private _pendingEon;
    bytes32 private _pendingRoot;
    uint256 private _pendingTotal;
    uint64 private _pendingClaimableAt;

    /// @notice The sum of everything ever paid out.
    uint256 public totalClaimed;
    /// @notice What each account has been paid so far.
    mapping(address account => uint256 amount) public claimed;

    /// One address's stake on one Ed25519 key: how much, and when it may be paid out
    /// (0 while no unstake was requested). No amount: no position.
    struct Position {
        uint64 unlockAt;
        uint256 amount;
    }

    /// @notice The sum of every position: wei that belongs to stakers, never to rewards.
    uint256 public totalStaked;
    mapping(bytes32 key => mapping(address staker => Position)) private _stakes;

    /// @notice A root was committed for `eon`, promising `total` in all; claims may
    /// use it from block `claimableAt` on unless the guardian cancels it or a newer
    /// root replaces it before then.
    event RootCommitted(uint64 indexed eon, bytes32 root, uint256 total, uint64 claimableAt);
    /// @notice The guardian cancelled the pending root of `eon` in its challenge window.
    event RootCancelled(uint64 indexed eon, bytes32 root);
    /// @notice The guardian replaced the operator.
    event OperatorChanged(address indexed previous, address indexed current);
    /// @notice The guardian handed its role to `current`.
    event GuardianChanged(address indexed previous, address indexed current);
    /// @notice `account` was paid `amount`, bringing its claims to `cumulative`.
    event Claimed(address indexed account, uint256 amount, uint256 cumulative);
    /// @notice `from` sent `amount` to the contract.
    event Funded(address indexed from, uint256 amount);
    /// @notice `staker` added `amount` to its position on `key`, which now holds `total`.
    event Staked(bytes32 indexed key, address indexed staker, uint256 amount, uint256 total);
    /// @notice `staker` asked for its whole `amount` staked on `key`; `unstake` pays it
    /// from `unlockAt` (a block timestamp) on.
    event UnstakeRequested(
        bytes32 indexed key, address indexed staker, uint256 amount, uint64 unlockAt
    );
    /// @notice `staker` was paid back its whole `amount` staked on `key`; its position
    /// is gone.
    event Unstaked(bytes32 indexed key, address indexed staker, uint256 amount);

    error ZeroOperator();
    error ZeroGuardian();
    error InvalidChallengeBlocks(uint64 given);
    error NotOperator(address caller);
    error NotGuardian(address caller);
    error StaleEon(uint64 latest, uint64 given);
    error TotalBelowClaimed(uint256 claimed, uint256 total);
    error Insolvent(uint256 available, uint256 total);
    error NoPendingRoot(uint64 eon);
    error AlreadyClaimable(uint64 eon);
    error NoRoot();
    error InvalidProof();
    error ExceedsCommittedTotal(uint256 committed, uint256 wouldBeClaimed);
    error TransferFailed();
    error InvalidUnbondingSeconds(uint64 given);
    error ZeroStake();
    error NoStake(bytes32 key);
    error AlreadyUnbonding(bytes32 key, uint64 unlockAt);
    error UnstakeNotRequested(bytes32 key);
    error StillUnbonding(bytes32 key, uint64 unlockAt);
    error RewardPoolShort(uint256 pool, uint256 amount);

    modifier onlyGuardian() {
        if (msg.sender != guardian) revert NotGuardian(msg.sender);
        _;
    }

    /// @param operator_ commits roots.
    /// @param guardian_ may cancel pending roots and rotate the operator.
    /// @param challengeBlocks_ blocks between a commit and its root being claimable
    /// (1 to 2^32).
    /// @param unbondingSeconds_ seconds between an unstake request and the payout
    /// (1 to 2^32).
    constructor(
        address operator_,
        address guardian_,
        uint64 challengeBlocks_,
        uint64 unbondingSeconds_
    ) {
        if (operator_ == address(0)) revert ZeroOperator();
        if (guardian_ == address(0)) revert ZeroGuardian();
        // Zero would make every root claimable at once (no challenge at all); the
        // upper bound keeps `block.number + challengeBlocks` far from overflowing.
        if (challengeBlocks_ == 0 || challengeBlocks_ > type(uint32).max) {
            revert InvalidChallengeBlocks(challengeBlocks_);
        }
        // Zero would let a stake leave the moment its unstake is asked, to back another
        // key at once; the bound keeps `block.timestamp + unbondingSeconds` far inside
        // uint64.
        if (unbondingSeconds_ == 0 || unbondingSeconds_ > type(uint32).max) {
            revert InvalidUnbondingSeconds(unbondingSeconds_);
        }
        operator = operator_;
        guardian = guardian_;
        challengeBlocks = challengeBlocks_;
        unbondingSeconds = unbondingSeconds_;
        emit OperatorChanged(address(0), operator_);
        emit GuardianChanged(address(0), guardian_);
    }

    /// @notice Funds the rewards.
    /// @dev Promotes nothing: it stays cheap enough for a 2300-gas `transfer`, and
    /// promotion never depends on it (every view reports the effective state).
    receive() external payable {
        emit Funded(msg.sender, msg.value);
    }

    /// @notice The claimable eon (0 before any root matured).
    function eon() external view returns (uint64) {
        return _matured() ? _pendingEon : _eon;
    }

    /// @notice The claimable root; claims are proven against it.
    function root() external view returns (bytes32) {
        return _matured() ? _pendingRoot : _root;
    }

    /// @notice The sum of every cumulative amount in the claimable root.
    function committedTotal() external view returns (uint256) {
        return _matured() ? _pendingTotal : _committedTotal;
    }

    /// @notice The root still in its challenge window, if any (all zero when none):
    /// its eon, root, total and the first block where it is claimable.
    function pending()
        external
        view
        returns (uint64 eon_, bytes32 root_, uint256 total, uint64 claimableAt)
    {
        if (_pendingEon == 0 || _matured()) return (0, bytes32(0), 0, 0);
        return (_pendingEon, _pendingRoot, _pendingTotal, _pendingClaimableAt);
    }

    /// @notice Commits the reward root of `eon_`; `total` is the sum of its leaves. It
    /// becomes claimable `challengeBlocks` blocks from now, replacing any root still
    /// pending.
    /// @dev Refuses a total the contract could not pay: what it holds plus what it
    /// already paid must cover every cumulative amount in the tree.
    function commitRoot(uint64 eon_, bytes32 root_, uint256 total) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        _promote();
        // Against the claimable eon and, when one is live, the pending eon.
        uint64 latest = _pendingEon > _eon ? _pendingEon : _eon;
        if (eon_ <= latest) revert StaleEon(latest, eon_);
        if (total < totalClaimed) revert TotalBelowClaimed(totalClaimed, total);
        // Staked wei is not the pool's: a root may promise only what lies beyond it.
        uint256 available = _rewardPool() + totalClaimed;
        if (available < total) revert Insolvent(available, total);
        uint64 claimableAt = uint64(block.number) + challengeBlocks;
        _pendingEon = eon_;
        _pendingRoot = root_;
        _pendingTotal = total;
        _pendingClaimableAt = claimableAt;
        emit RootCommitted(eon_, root_, total, claimableAt);
    }

    /// @notice Cancels the pending root of `eon_` while it is in its challenge window;
    /// the operator may then commit that eon again.
    function cancelRoot(uint64 eon_) external onlyGuardian {
        _promote();
        // A root whose window is over is claimable: claims may already have used it.
        if (eon_ != 0 && eon_ == _eon) revert AlreadyClaimable(eon_);
        if (_pendingEon == 0 || _pendingEon != eon_) revert NoPendingRoot(eon_);
        bytes32 cancelled = _pendingRoot;
        _clearPending();
        emit RootCancelled(eon_, cancelled);
    }

    /// @notice Replaces the operator (the old one can commit nothing from now on).
    function setOperator(address operator_) external onlyGuardian {
        if (operator_ == address(0)) revert ZeroOperator();
        _promote();
        emit OperatorChanged(operator, operator_);
        operator = operator_;
    }

    /// @notice Hands the guardian role to `guardian_`.
    function setGuardian(address guardian_) external onlyGuardian {
        if (guardian_ == address(0)) revert ZeroGuardian();
        _promote();
        emit GuardianChanged(guardian, guardian_);
        guardian = guardian_;
    }

    /// @notice Pays `account` its `cumulative` reward minus what it already claimed,
    /// proven against the claimable root (never a pending one). Anyone may send it;
    /// the money goes to `account`.
    /// @return amount What was paid (0 when everything was already claimed).
    function claim(address account, uint256 cumulative, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        _promote();
        if (_root == bytes32(0)) revert NoRoot();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, _root, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulative <= already) {
            return 0;
        }
        amount = cumulative - already;
        uint256 wouldBeClaimed = totalClaimed + amount;
        // A tree whose leaves sum to more than its committed total cannot drain
        // money promised to others.
        if (wouldBeClaimed > _committedTotal) {
            revert ExceedsCommittedTotal(_committedTotal, wouldBeClaimed);
        }
        // Commits are bounded by the pool, so this holds; it is checked anyway, so
        // that no accounting slip could ever pay a reward out of stakes.
        uint256 pool = _rewardPool();
        if (amount > pool) revert RewardPoolShort(pool, amount);
        claimed[account] = cumulative;
        totalClaimed = wouldBeClaimed;
        emit Claimed(account, amount, cumulative);
        (bool ok,) = account.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice What `account` would be paid now for `cumulative` (not checking a proof).
    function claimable(address account, uint256 cumulative) external view returns (uint256) {
        uint256 already = claimed[account];
        return cumulative > already ? cumulative - already : 0;
    }

    /// @notice What the contract holds for rewards: its balance minus every stake.
    function rewardPool() external view returns (uint256) {
        return _rewardPool();
    }

    /// @notice Stakes `msg.value` on the Ed25519 public key `key`, adding to the
    /// caller's own position on it (other addresses' positions on the key are
    /// separate); nothing may be added while that position is unbonding.
    function stake(bytes32 key) external payable {
        if (msg.value == 0) revert ZeroStake();
        Position storage position = _stakes[key][msg.sender];
        if (position.unlockAt != 0) revert AlreadyUnbonding(key, position.unlockAt);
        position.amount += msg.value;
        totalStaked += msg.value;
        emit Staked(key, msg.sender, msg.value, position.amount);
    }

    /// @notice Starts unbonding the caller's whole position on `key`: `unstake` pays
    /// it `unbondingSeconds` from now.
    function requestUnstake(bytes32 key) external {
        Position storage position = _ownPosition(key);
        if (position.unlockAt != 0) revert AlreadyUnbonding(key, position.unlockAt);
        uint64 unlockAt = uint64(block.timestamp) + unbondingSeconds;
        position.unlockAt = unlockAt;
        emit UnstakeRequested(key, msg.sender, position.amount, unlockAt);
    }

    /// @notice Pays the caller's whole position on `key` back to it once its unbonding
    /// is over, and clears the position (a second call finds nothing: `NoStake`).
    /// @return amount What was paid.
    function unstake(bytes32 key) external nonReentrant returns (uint256 amount) {
        Position storage position = _ownPosition(key);
        uint64 unlockAt = position.unlockAt;
        if (unlockAt == 0) revert UnstakeNotRequested(key);
        if (block.timestamp < unlockAt) revert StillUnbonding(key, unlockAt);
        amount = position.amount;
        // Cleared before paying: a reentrant call finds no position.
        delete _stakes[key][msg.sender];
        totalStaked -= amount;
        emit Unstaked(key, msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice The position of `staker` on `key`: the wei staked and the timestamp
    /// from which `unstake` pays (both zero when none; `unlockAt` 0 while bonded).
    function stakeOf(bytes32 key, address staker)
        external
        view
        returns (uint256 amount, uint64 unlockAt)
    {
        Position storage position = _stakes[key][staker];
        return (position.amount, position.unlockAt);
    }

    /// The caller's own position on `key`, or `NoStake` when it holds none there.
    function _ownPosition(bytes32 key) private view returns (Position storage position) {
        position = _stakes[key][msg.sender];
        // `stake` refuses zero, so a position without an amount was never made.
        if (position.amount == 0) revert NoStake(key);
    }

    /// The balance that is not staked.
    function _rewardPool() private view returns (uint256) {
        return address(this).balance - totalStaked;
    }

    /// Whether the pending root's challenge window is over.
    function _matured() private view returns (bool) {
        return _pendingEon != 0 && block.number >= _pendingClaimableAt;
    }

    /// Makes a matured pending root the claimable one.
    function _promote() private {
        if (!_matured()) return;
        _eon = _pendingEon;
        _root = _pendingRoot;
        _committedTotal = _pendingTotal;
        _clearPending();
    }

    function _clearPending() private {
        _pendingEon = 0;
        _pendingRoot = bytes32(0);
        _pendingTotal = 0;
        _pendingClaimableAt = 0;
    }
}
