<?php
/**
 * The WordPress request referee's edits: `php edit.php SEED` makes a few
 * random changes of the kinds a site owner makes (edit, publish, trash,
 * unpublish, recategorise, untag; approve, edit, spam and delete comments;
 * rename and delete categories; menus; widgets; the site's title), through
 * WordPress's own functions so every hook fires as in wp-admin, and prints
 * what it did on one line. The kiln plugin tells the daemon at shutdown.
 */
require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/nav-menu.php';

$seed = (int) ( $argv[1] ?? 1 );
mt_srand( $seed );
$did  = array();
$pick = function ( $list ) {
	return $list ? $list[ mt_rand( 0, count( $list ) - 1 ) ] : null;
};
$posts = function ( $status = 'publish' ) {
	return get_posts( array( 'post_status' => $status, 'numberposts' => -1, 'fields' => 'ids', 'post_type' => 'post', 'has_password' => false ) );
};
$kinds = array( 'retitle', 'publish', 'trash', 'unpublish', 'recategorise', 'untag', 'comment', 'approve', 'spam', 'edit-comment', 'delete-comment', 'rename-category', 'delete-tag', 'menu', 'widget', 'slug', 'author' );
// Seeds 1-3 (what CI runs) make every kind of edit the issue names at
// least once; later seeds pick at random.
$fixed = array(
	1 => array( 'retitle', 'publish', 'trash', 'widget' ),
	2 => array( 'comment', 'approve', 'menu', 'spam', 'untag' ),
	3 => array( 'rename-category', 'unpublish', 'slug', 'author', 'delete-tag', 'recategorise' ),
);
$plan  = $fixed[ $seed ] ?? array();
$n     = $plan ? count( $plan ) : 2 + mt_rand( 0, 2 );
for ( $i = 0; $i < $n; $i++ ) {
	$kind = $plan ? $plan[ $i ] : $pick( $kinds );
	switch ( $kind ) {
		case 'retitle':
			$id = $pick( $posts() );
			wp_update_post( array( 'ID' => $id, 'post_title' => "Retitled $seed-$i" ) );
			$did[] = "retitle $id";
			break;
		case 'publish':
			$cats  = get_terms( array( 'taxonomy' => 'category', 'hide_empty' => false, 'fields' => 'ids' ) );
			$id    = wp_insert_post( array( 'post_title' => "New post $seed-$i", 'post_content' => "Fresh $seed $i.", 'post_status' => 'publish', 'post_category' => array( $pick( $cats ) ), 'tags_input' => array( "fresh-$seed" ) ) );
			$did[] = "publish $id";
			break;
		case 'trash':
			$id = $pick( $posts() );
			wp_trash_post( $id );
			$did[] = "trash $id";
			break;
		case 'unpublish':
			$id = $pick( $posts() );
			wp_update_post( array( 'ID' => $id, 'post_status' => 'draft' ) );
			$did[] = "unpublish $id";
			break;
		case 'recategorise':
			$id   = $pick( $posts() );
			$cats = get_terms( array( 'taxonomy' => 'category', 'hide_empty' => false, 'fields' => 'ids' ) );
			wp_set_post_categories( $id, array( $pick( $cats ) ) );
			$did[] = "recategorise $id";
			break;
		case 'untag':
			$id = $pick( $posts() );
			wp_set_post_tags( $id, array() );
			$did[] = "untag $id";
			break;
		case 'comment':
			$id = $pick( $posts() );
			$approved = $plan ? 1 : mt_rand( 0, 1 );
			wp_insert_comment( array( 'comment_post_ID' => $id, 'comment_author' => "Reader $seed", 'comment_author_email' => "reader$seed@example.org", 'comment_content' => "Nice, seed $seed $i.", 'comment_approved' => $approved ) );
			$did[] = ( $approved ? 'approved' : 'held' ) . " comment on $id";
			break;
		case 'approve':
			$c = $pick( get_comments( array( 'status' => 'hold', 'fields' => 'ids' ) ) );
			if ( $c ) {
				wp_set_comment_status( $c, 'approve' );
				$did[] = "approve comment $c";
			}
			break;
		case 'spam':
			$c = $pick( get_comments( array( 'status' => 'approve', 'fields' => 'ids' ) ) );
			if ( $c ) {
				wp_spam_comment( $c );
				$did[] = "spam comment $c";
			}
			break;
		case 'edit-comment':
			$c = $pick( get_comments( array( 'status' => 'approve', 'fields' => 'ids' ) ) );
			if ( $c ) {
				wp_update_comment( array( 'comment_ID' => $c, 'comment_content' => "Edited $seed-$i." ) );
				$did[] = "edit comment $c";
			}
			break;
		case 'delete-comment':
			$c = $pick( get_comments( array( 'status' => 'approve', 'fields' => 'ids' ) ) );
			if ( $c ) {
				wp_delete_comment( $c, true );
				$did[] = "delete comment $c";
			}
			break;
		case 'rename-category':
			$t = $pick( get_terms( array( 'taxonomy' => 'category', 'hide_empty' => false, 'fields' => 'ids' ) ) );
			wp_update_term( $t, 'category', array( 'name' => "Renamed $seed-$i" ) );
			$did[] = "rename category $t";
			break;
		case 'delete-tag':
			$t = $pick( get_terms( array( 'taxonomy' => 'post_tag', 'hide_empty' => false, 'fields' => 'ids' ) ) );
			if ( $t ) {
				wp_delete_term( $t, 'post_tag' );
				$did[] = "delete tag $t";
			}
			break;
		case 'menu':
			$menu  = wp_get_nav_menu_object( 'Main' );
			$items = wp_get_nav_menu_items( $menu->term_id );
			$item  = $pick( $items );
			wp_update_nav_menu_item(
				$menu->term_id,
				$item->ID,
				array(
					'menu-item-title'     => "Menu $seed-$i",
					'menu-item-object'    => $item->object,
					'menu-item-object-id' => $item->object_id,
					'menu-item-type'      => $item->type,
					'menu-item-status'    => 'publish',
					'menu-item-position'  => $item->menu_order,
				)
			);
			$did[] = "rename menu item {$item->ID}";
			break;
		case 'widget':
			$blocks = get_option( 'widget_block', array() );
			$keys   = array_values( array_filter( array_keys( $blocks ), 'is_int' ) );
			$k      = $pick( $keys );
			$blocks[ $k ]['content'] = "<!-- wp:paragraph --><p>Studio news $seed-$i</p><!-- /wp:paragraph -->";
			update_option( 'widget_block', $blocks );
			$did[] = "widget $k";
			break;
		case 'slug':
			$id = $pick( $posts() );
			wp_update_post( array( 'ID' => $id, 'post_name' => "moved-$seed-$i" ) );
			$did[] = "slug $id";
			break;
		case 'author':
			wp_update_user( array( 'ID' => 1, 'display_name' => "Potter $seed-$i" ) );
			$did[] = 'rename author';
			break;
	}
}
echo implode( ', ', $did ), "\n";
